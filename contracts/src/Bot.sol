// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

interface IERC20B {
    function transfer(address, uint256) external returns (bool);
    function balanceOf(address) external view returns (uint256);
}

interface IPairB {
    function getReserves() external view returns (uint112, uint112, uint32);
    function swap(uint256, uint256, address, bytes calldata) external;
    function token0() external view returns (address);
    function token1() external view returns (address);
}

/// @title An attacker's bot contract: holds inventory and trades one leg straight against a pair
/// (front-run or back-run), for any of its operators (an attacker split over several accounts).
contract Bot {
    address public immutable owner;
    mapping(address => bool) public operator;

    constructor() {
        owner = msg.sender;
        operator[msg.sender] = true;
    }

    function setOperator(address who, bool allowed) external {
        require(msg.sender == owner, "Bot: not owner");
        operator[who] = allowed;
    }

    /// Sells `amountIn` of `tokenIn` (from the bot's balance) into `pair`, receiving at least `minOut`.
    function leg(address pair, address tokenIn, uint256 amountIn, uint256 minOut) external returns (uint256 out) {
        require(operator[msg.sender], "Bot: not operator");
        (, out) = _leg(pair, tokenIn, amountIn);
        require(out >= minOut, "Bot: slippage");
    }

    /// Several legs in a row through `pairs` (a multi-hop front-run or back-run across pools):
    /// sells `amountIn` of `tokenIn` into the first pair, the output into the next, and so on.
    function route(address[] calldata pairs, address tokenIn, uint256 amountIn, uint256 minOut) external returns (uint256 out) {
        require(operator[msg.sender], "Bot: not operator");
        address token = tokenIn;
        out = amountIn;
        for (uint256 i = 0; i < pairs.length; i++) {
            (token, out) = _leg(pairs[i], token, out);
        }
        require(out >= minOut, "Bot: slippage");
    }

    /// Cyclic arbitrage over two pairs of the same tokens: buy on `pairBuy`, sell it all on
    /// `pairSell`, in one transaction; reverts unless it ends with more `tokenIn` than it started.
    function arb(address pairBuy, address pairSell, address tokenIn, uint256 amountIn) external returns (uint256 profit) {
        require(operator[msg.sender], "Bot: not operator");
        (address mid, uint256 got) = _leg(pairBuy, tokenIn, amountIn);
        (, uint256 back) = _leg(pairSell, mid, got);
        require(back > amountIn, "Bot: no profit");
        profit = back - amountIn;
    }

    function _leg(address pair, address tokenIn, uint256 amountIn) internal returns (address tokenOut, uint256 out) {
        (uint112 r0, uint112 r1,) = IPairB(pair).getReserves();
        address t0 = IPairB(pair).token0();
        bool zeroIn = tokenIn == t0;
        tokenOut = zeroIn ? IPairB(pair).token1() : t0;
        (uint256 rin, uint256 rout) = zeroIn ? (uint256(r0), uint256(r1)) : (uint256(r1), uint256(r0));
        uint256 a = amountIn * 997;
        out = a * rout / (rin * 1000 + a);
        require(IERC20B(tokenIn).transfer(pair, amountIn), "Bot: transfer");
        IPairB(pair).swap(zeroIn ? 0 : out, zeroIn ? out : 0, address(this), new bytes(0));
    }

    function withdraw(address token, address to, uint256 amount) external {
        require(msg.sender == owner, "Bot: not owner");
        require(IERC20B(token).transfer(to, amount), "Bot: transfer");
    }
}
