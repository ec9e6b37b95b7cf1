// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

interface IERC20J {
    function transfer(address, uint256) external returns (bool);
}

interface ICLPoolJ {
    function mint(address, int24, int24, uint128, bytes calldata) external returns (uint256, uint256);
    function burn(int24, int24, uint128) external returns (uint256, uint256);
    function collect(address, int24, int24, uint128, uint128) external returns (uint128, uint128);
    function token0() external view returns (address);
    function token1() external view returns (address);
}

/// @title A just-in-time liquidity provider's contract: adds liquidity in a tick range right
/// before a large swap and, in a later transaction, removes it and collects the fees.
contract JitBot {
    address public immutable operator;

    constructor() {
        operator = msg.sender;
    }

    function add(address pool, int24 lo, int24 hi, uint128 amount) external {
        require(msg.sender == operator, "JitBot: operator");
        ICLPoolJ(pool).mint(address(this), lo, hi, amount, abi.encode(pool));
    }

    function remove(address pool, int24 lo, int24 hi, uint128 amount) external {
        require(msg.sender == operator, "JitBot: operator");
        ICLPoolJ(pool).burn(lo, hi, amount);
        ICLPoolJ(pool).collect(address(this), lo, hi, type(uint128).max, type(uint128).max);
    }

    function uniswapV3MintCallback(uint256 owed0, uint256 owed1, bytes calldata data) external {
        address pool = abi.decode(data, (address));
        require(msg.sender == pool, "JitBot: pool");
        if (owed0 > 0) require(IERC20J(ICLPoolJ(pool).token0()).transfer(pool, owed0), "JitBot: pay0");
        if (owed1 > 0) require(IERC20J(ICLPoolJ(pool).token1()).transfer(pool, owed1), "JitBot: pay1");
    }
}
