// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

interface IERC20R {
    function transferFrom(address, address, uint256) external returns (bool);
}

interface IPair {
    function getReserves() external view returns (uint112, uint112, uint32);
    function swap(uint256, uint256, address, bytes calldata) external;
    function mint(address) external returns (uint256);
    function token0() external view returns (address);
}

interface IFactory {
    function getPair(address, address) external view returns (address);
}

/// @title Router with Uniswap V2 Router02's swap signatures (so pending calls decode as Router02's):
/// minimum out or maximum in, and a deadline; multi-hop paths.
contract Router {
    address public immutable factory;

    constructor(address factory_) {
        factory = factory_;
    }

    modifier ensure(uint256 deadline) {
        require(deadline >= block.timestamp, "Router: expired");
        _;
    }

    function pairFor(address a, address b) public view returns (address pair) {
        pair = IFactory(factory).getPair(a, b);
        require(pair != address(0), "Router: no pair");
    }

    function getAmountOut(uint256 amountIn, uint256 reserveIn, uint256 reserveOut) public pure returns (uint256) {
        require(amountIn > 0 && reserveIn > 0 && reserveOut > 0, "Router: amounts");
        uint256 a = amountIn * 997;
        return a * reserveOut / (reserveIn * 1000 + a);
    }

    function getAmountIn(uint256 amountOut, uint256 reserveIn, uint256 reserveOut) public pure returns (uint256) {
        require(amountOut > 0 && reserveIn > 0 && reserveOut > amountOut, "Router: amounts");
        return reserveIn * amountOut * 1000 / ((reserveOut - amountOut) * 997) + 1;
    }

    function _reserves(address a, address b) internal view returns (uint256 ra, uint256 rb) {
        IPair p = IPair(pairFor(a, b));
        (uint112 r0, uint112 r1,) = p.getReserves();
        (ra, rb) = a == p.token0() ? (uint256(r0), uint256(r1)) : (uint256(r1), uint256(r0));
    }

    function getAmountsOut(uint256 amountIn, address[] memory path) public view returns (uint256[] memory amounts) {
        amounts = new uint256[](path.length);
        amounts[0] = amountIn;
        for (uint256 i = 0; i < path.length - 1; i++) {
            (uint256 ra, uint256 rb) = _reserves(path[i], path[i + 1]);
            amounts[i + 1] = getAmountOut(amounts[i], ra, rb);
        }
    }

    function getAmountsIn(uint256 amountOut, address[] memory path) public view returns (uint256[] memory amounts) {
        amounts = new uint256[](path.length);
        amounts[path.length - 1] = amountOut;
        for (uint256 i = path.length - 1; i > 0; i--) {
            (uint256 ra, uint256 rb) = _reserves(path[i - 1], path[i]);
            amounts[i - 1] = getAmountIn(amounts[i], ra, rb);
        }
    }

    function _swap(uint256[] memory amounts, address[] memory path, address to) internal {
        for (uint256 i = 0; i < path.length - 1; i++) {
            IPair p = IPair(pairFor(path[i], path[i + 1]));
            uint256 out = amounts[i + 1];
            (uint256 o0, uint256 o1) = path[i] == p.token0() ? (uint256(0), out) : (out, uint256(0));
            address recipient = i < path.length - 2 ? pairFor(path[i + 1], path[i + 2]) : to;
            p.swap(o0, o1, recipient, new bytes(0));
        }
    }

    function swapExactTokensForTokens(uint256 amountIn, uint256 amountOutMin, address[] calldata path, address to, uint256 deadline)
        external ensure(deadline) returns (uint256[] memory amounts)
    {
        amounts = getAmountsOut(amountIn, path);
        require(amounts[amounts.length - 1] >= amountOutMin, "Router: insufficient output");
        require(IERC20R(path[0]).transferFrom(msg.sender, pairFor(path[0], path[1]), amounts[0]), "Router: transferFrom");
        _swap(amounts, path, to);
    }

    function swapTokensForExactTokens(uint256 amountOut, uint256 amountInMax, address[] calldata path, address to, uint256 deadline)
        external ensure(deadline) returns (uint256[] memory amounts)
    {
        amounts = getAmountsIn(amountOut, path);
        require(amounts[0] <= amountInMax, "Router: excessive input");
        require(IERC20R(path[0]).transferFrom(msg.sender, pairFor(path[0], path[1]), amounts[0]), "Router: transferFrom");
        _swap(amounts, path, to);
    }

    /// Adds exactly the given amounts (the lab's liquidity providers price their own deposits).
    function addLiquidity(address tokenA, address tokenB, uint256 amountA, uint256 amountB, address to)
        external returns (uint256 liquidity)
    {
        address pair = pairFor(tokenA, tokenB);
        require(IERC20R(tokenA).transferFrom(msg.sender, pair, amountA) && IERC20R(tokenB).transferFrom(msg.sender, pair, amountB), "Router: transferFrom");
        liquidity = IPair(pair).mint(to);
    }
}
