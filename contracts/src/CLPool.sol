// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

interface IERC20C {
    function transfer(address, uint256) external returns (bool);
    function balanceOf(address) external view returns (uint256);
}

interface ICLSwapCallback {
    function uniswapV3SwapCallback(int256 amount0Delta, int256 amount1Delta, bytes calldata data) external;
}

interface ICLMintCallback {
    function uniswapV3MintCallback(uint256 amount0Owed, uint256 amount1Owed, bytes calldata data) external;
}

/// @title A concentrated-liquidity pool for the lab, with Uniswap V3's external interface
/// @notice `swap`, `mint`, `burn` and `collect` have V3's signatures, callbacks and events
/// (Swap, Mint, Burn, Collect), so mevwatch's V3 decoders read it from calls and from logs.
/// @dev Deliberately small: positions carry a tick range, but every position is always in
/// range (the price never crosses a tick boundary here), i.e. liquidity is one pool-wide
/// L and a position's amounts are those of full-range liquidity at the current price.
/// Swaps follow V3's constant-L formulas; a 0.3% fee is shared pro rata to liquidity
/// through a global fee-growth accumulator. The `tick` in Swap is not computed (0).
contract CLPool {
    uint256 internal constant Q96 = 2 ** 96;
    uint256 internal constant Q128 = 2 ** 128;
    uint24 public constant fee = 3000; // 0.3%, in hundredths of a bip

    address public immutable token0;
    address public immutable token1;
    uint160 public sqrtPriceX96;
    uint128 public liquidity;
    uint256 public feeGrowthGlobal0X128;
    uint256 public feeGrowthGlobal1X128;

    struct Position {
        uint128 liquidity;
        uint256 feeGrowth0LastX128;
        uint256 feeGrowth1LastX128;
        uint128 tokensOwed0;
        uint128 tokensOwed1;
    }

    mapping(bytes32 => Position) public positions;

    event Initialize(uint160 sqrtPriceX96, int24 tick);
    event Mint(address sender, address indexed owner, int24 indexed tickLower, int24 indexed tickUpper, uint128 amount, uint256 amount0, uint256 amount1);
    event Burn(address indexed owner, int24 indexed tickLower, int24 indexed tickUpper, uint128 amount, uint256 amount0, uint256 amount1);
    event Collect(address indexed owner, address recipient, int24 indexed tickLower, int24 indexed tickUpper, uint128 amount0, uint128 amount1);
    event Swap(address indexed sender, address indexed recipient, int256 amount0, int256 amount1, uint160 sqrtPriceX96, uint128 liquidity, int24 tick);

    constructor(address tokenA, address tokenB) {
        (token0, token1) = tokenA < tokenB ? (tokenA, tokenB) : (tokenB, tokenA);
    }

    function initialize(uint160 price) external {
        require(sqrtPriceX96 == 0, "CL: initialized");
        require(price > 0, "CL: price");
        sqrtPriceX96 = price;
        emit Initialize(price, 0);
    }

    function _key(address owner, int24 lo, int24 hi) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(owner, lo, hi));
    }

    function _amounts(uint128 l, bool up) internal view returns (uint256 a0, uint256 a1) {
        uint256 p = sqrtPriceX96;
        a0 = uint256(l) * Q96 / p;
        a1 = uint256(l) * p / Q96;
        if (up) {
            a0 += 1;
            a1 += 1;
        }
    }

    function _settle(Position storage pos) internal {
        uint256 l = pos.liquidity;
        pos.tokensOwed0 += uint128((feeGrowthGlobal0X128 - pos.feeGrowth0LastX128) * l / Q128);
        pos.tokensOwed1 += uint128((feeGrowthGlobal1X128 - pos.feeGrowth1LastX128) * l / Q128);
        pos.feeGrowth0LastX128 = feeGrowthGlobal0X128;
        pos.feeGrowth1LastX128 = feeGrowthGlobal1X128;
    }

    function mint(address recipient, int24 tickLower, int24 tickUpper, uint128 amount, bytes calldata data)
        external
        returns (uint256 amount0, uint256 amount1)
    {
        require(tickLower < tickUpper && amount > 0, "CL: mint args");
        require(sqrtPriceX96 != 0, "CL: not initialized");
        Position storage pos = positions[_key(recipient, tickLower, tickUpper)];
        _settle(pos);
        (amount0, amount1) = _amounts(amount, true);
        uint256 b0 = IERC20C(token0).balanceOf(address(this));
        uint256 b1 = IERC20C(token1).balanceOf(address(this));
        ICLMintCallback(msg.sender).uniswapV3MintCallback(amount0, amount1, data);
        require(IERC20C(token0).balanceOf(address(this)) >= b0 + amount0, "CL: M0");
        require(IERC20C(token1).balanceOf(address(this)) >= b1 + amount1, "CL: M1");
        pos.liquidity += amount;
        liquidity += amount;
        emit Mint(msg.sender, recipient, tickLower, tickUpper, amount, amount0, amount1);
    }

    function burn(int24 tickLower, int24 tickUpper, uint128 amount) external returns (uint256 amount0, uint256 amount1) {
        Position storage pos = positions[_key(msg.sender, tickLower, tickUpper)];
        require(pos.liquidity >= amount, "CL: burn");
        _settle(pos);
        (amount0, amount1) = _amounts(amount, false);
        pos.liquidity -= amount;
        liquidity -= amount;
        pos.tokensOwed0 += uint128(amount0);
        pos.tokensOwed1 += uint128(amount1);
        emit Burn(msg.sender, tickLower, tickUpper, amount, amount0, amount1);
    }

    function collect(address recipient, int24 tickLower, int24 tickUpper, uint128 amount0Requested, uint128 amount1Requested)
        external
        returns (uint128 amount0, uint128 amount1)
    {
        Position storage pos = positions[_key(msg.sender, tickLower, tickUpper)];
        _settle(pos);
        amount0 = amount0Requested > pos.tokensOwed0 ? pos.tokensOwed0 : amount0Requested;
        amount1 = amount1Requested > pos.tokensOwed1 ? pos.tokensOwed1 : amount1Requested;
        pos.tokensOwed0 -= amount0;
        pos.tokensOwed1 -= amount1;
        if (amount0 > 0) require(IERC20C(token0).transfer(recipient, amount0), "CL: T0");
        if (amount1 > 0) require(IERC20C(token1).transfer(recipient, amount1), "CL: T1");
        emit Collect(msg.sender, recipient, tickLower, tickUpper, amount0, amount1);
    }

    /// Exact-input swaps only (`amountSpecified` > 0); the price limit is ignored.
    function swap(address recipient, bool zeroForOne, int256 amountSpecified, uint160, bytes calldata data)
        external
        returns (int256 amount0, int256 amount1)
    {
        require(amountSpecified > 0, "CL: exact input only");
        uint256 amountIn = uint256(amountSpecified);
        uint256 out = _move(zeroForOne, amountIn);
        (amount0, amount1) = zeroForOne ? (int256(amountIn), -int256(out)) : (-int256(out), int256(amountIn));
        _pay(recipient, zeroForOne, amountIn, out, amount0, amount1, data);
        emit Swap(msg.sender, recipient, amount0, amount1, sqrtPriceX96, liquidity, 0);
    }

    /// The price move and fee accrual of an exact-input swap; returns the output amount.
    function _move(bool zeroForOne, uint256 amountIn) internal returns (uint256 out) {
        uint256 l = liquidity;
        require(l > 0, "CL: no liquidity");
        uint256 feeAmount = amountIn * fee / 1e6;
        uint256 net = amountIn - feeAmount;
        uint256 p = sqrtPriceX96;
        uint256 pNew;
        if (zeroForOne) {
            pNew = l * Q96 / (l * Q96 / p + net); // 1/sqrtP grows by net / L
            out = l * (p - pNew) / Q96;
            feeGrowthGlobal0X128 += feeAmount * Q128 / l;
        } else {
            pNew = p + net * Q96 / l;
            out = l * Q96 / p - l * Q96 / pNew;
            feeGrowthGlobal1X128 += feeAmount * Q128 / l;
        }
        sqrtPriceX96 = uint160(pNew);
    }

    function _pay(address recipient, bool zeroForOne, uint256 amountIn, uint256 out, int256 amount0, int256 amount1,
                  bytes calldata data) internal {
        address tokenIn = zeroForOne ? token0 : token1;
        require(IERC20C(zeroForOne ? token1 : token0).transfer(recipient, out), "CL: transfer");
        uint256 before = IERC20C(tokenIn).balanceOf(address(this));
        ICLSwapCallback(msg.sender).uniswapV3SwapCallback(amount0, amount1, data);
        require(IERC20C(tokenIn).balanceOf(address(this)) >= before + amountIn, "CL: IIA");
    }
}
