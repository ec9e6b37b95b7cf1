// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

interface IERC20CR {
    function transferFrom(address, address, uint256) external returns (bool);
}

interface ICLPoolR {
    function token0() external view returns (address);
    function swap(address, bool, int256, uint160, bytes calldata) external returns (int256, int256);
}

/// @title The lab's router for CLPool, with Uniswap V3 SwapRouter's exactInputSingle signature
/// (so the mempool decoder reads its pending swaps). One pool per token pair, registered by the
/// deployer; `fee` in the parameters is ignored.
contract CLRouter {
    struct ExactInputSingleParams {
        address tokenIn;
        address tokenOut;
        uint24 fee;
        address recipient;
        uint256 deadline;
        uint256 amountIn;
        uint256 amountOutMinimum;
        uint160 sqrtPriceLimitX96;
    }

    address public immutable owner;
    mapping(address => mapping(address => address)) public poolFor;
    address private _payer;
    address private _pool;

    constructor() {
        owner = msg.sender;
    }

    function setPool(address tokenA, address tokenB, address pool) external {
        require(msg.sender == owner, "CLRouter: owner");
        poolFor[tokenA][tokenB] = pool;
        poolFor[tokenB][tokenA] = pool;
    }

    function exactInputSingle(ExactInputSingleParams calldata p) external payable returns (uint256 amountOut) {
        require(block.timestamp <= p.deadline, "CLRouter: expired");
        address pool = poolFor[p.tokenIn][p.tokenOut];
        require(pool != address(0), "CLRouter: no pool");
        bool zeroForOne = p.tokenIn == ICLPoolR(pool).token0();
        (_payer, _pool) = (msg.sender, pool);
        (int256 a0, int256 a1) = ICLPoolR(pool).swap(p.recipient, zeroForOne, int256(p.amountIn), p.sqrtPriceLimitX96, abi.encode(p.tokenIn));
        (_payer, _pool) = (address(0), address(0));
        amountOut = uint256(-(zeroForOne ? a1 : a0));
        require(amountOut >= p.amountOutMinimum, "CLRouter: too little received");
    }

    function uniswapV3SwapCallback(int256 amount0Delta, int256 amount1Delta, bytes calldata data) external {
        require(_payer != address(0) && msg.sender == _pool, "CLRouter: not in a swap");
        address tokenIn = abi.decode(data, (address));
        uint256 owed = uint256(amount0Delta > 0 ? amount0Delta : amount1Delta);
        require(IERC20CR(tokenIn).transferFrom(_payer, msg.sender, owed), "CLRouter: pay");
    }
}
