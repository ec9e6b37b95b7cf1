// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

interface IERC20P {
    function transfer(address, uint256) external returns (bool);
}

interface IPairP {
    function getReserves() external view returns (uint112, uint112, uint32);
    function swap(uint256, uint256, address, bytes calldata) external;
    function token0() external view returns (address);
    function token1() external view returns (address);
}

/// @title A bot contract with no ABI: every call is packed bytes read by the fallback, as many
/// real MEV bots do (no 4-byte selector, no 32-byte words), so no calldata decoder reads it.
/// The lab uses it for the held-out `packed_bot` attack family and for honest market makers
/// that rebalance through their own contract (`mm_opaque`).
///
/// Calldata: `n` (1 byte: pools in the route) ++ `n` pair addresses (20 bytes each) ++ the
/// input token (20 bytes) ++ the input amount (16 bytes, big-endian). Sells the amount into the
/// first pair, the output into the next, and so on; only operators may call.
contract PackedBot {
    address public immutable owner;
    mapping(address => bool) public operator;

    constructor() {
        owner = msg.sender;
        operator[msg.sender] = true;
    }

    function setOperator(address who, bool allowed) external {
        require(msg.sender == owner, "PackedBot: not owner");
        operator[who] = allowed;
    }

    fallback() external {
        require(operator[msg.sender], "PackedBot: not operator");
        uint256 n = uint8(msg.data[0]);
        require(n > 0 && msg.data.length == 1 + 20 * n + 20 + 16, "PackedBot: bad call");
        address token = address(bytes20(msg.data[1 + 20 * n:21 + 20 * n]));
        uint256 amount = uint128(bytes16(msg.data[21 + 20 * n:37 + 20 * n]));
        for (uint256 i = 0; i < n; i++) {
            address pair = address(bytes20(msg.data[1 + 20 * i:21 + 20 * i]));
            (token, amount) = _leg(pair, token, amount);
        }
    }

    function _leg(address pair, address tokenIn, uint256 amountIn) internal returns (address tokenOut, uint256 out) {
        (uint112 r0, uint112 r1,) = IPairP(pair).getReserves();
        address t0 = IPairP(pair).token0();
        bool zeroIn = tokenIn == t0;
        tokenOut = zeroIn ? IPairP(pair).token1() : t0;
        (uint256 rin, uint256 rout) = zeroIn ? (uint256(r0), uint256(r1)) : (uint256(r1), uint256(r0));
        uint256 a = amountIn * 997;
        out = a * rout / (rin * 1000 + a);
        require(IERC20P(tokenIn).transfer(pair, amountIn), "PackedBot: transfer");
        IPairP(pair).swap(zeroIn ? 0 : out, zeroIn ? out : 0, address(this), new bytes(0));
    }
}
