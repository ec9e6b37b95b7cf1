// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Pair} from "./Pair.sol";

/// @title Deploys pairs with CREATE2 (salt = keccak256(token0, token1)), as Uniswap V2's factory,
/// so a pair's address follows from the factory, the tokens and keccak256(Pair creation code).
contract Factory {
    mapping(address => mapping(address => address)) public getPair;
    address[] public allPairs;

    event PairCreated(address indexed token0, address indexed token1, address pair, uint256);

    function allPairsLength() external view returns (uint256) {
        return allPairs.length;
    }

    function createPair(address tokenA, address tokenB) external returns (address pair) {
        require(tokenA != tokenB, "Factory: identical");
        (address token0, address token1) = tokenA < tokenB ? (tokenA, tokenB) : (tokenB, tokenA);
        require(token0 != address(0), "Factory: zero");
        require(getPair[token0][token1] == address(0), "Factory: exists");
        pair = address(new Pair{salt: keccak256(abi.encodePacked(token0, token1))}());
        Pair(pair).initialize(token0, token1);
        getPair[token0][token1] = pair;
        getPair[token1][token0] = pair;
        allPairs.push(pair);
        emit PairCreated(token0, token1, pair, allPairs.length);
    }
}
