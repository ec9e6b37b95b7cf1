// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// A contract that answers every read `mevwatch verify` makes of an AttestationRegistry the way a
/// forger wants: any root is batch 1, batch 1 is whatever was set, every attester is authorised.
/// Only the code hash tells it from the real registry.
contract LookAlike {
    struct Batch {
        bytes32 root;
        bytes32 modelHash;
        uint64 fromBlock;
        uint64 toBlock;
        uint32 count;
        uint64 attestedAt;
        address attester;
        uint64 prevOfAttester;
        bool revoked;
        string uri;
    }

    Batch private b;

    function set(bytes32 root, uint64 fromBlock, uint64 toBlock, uint32 count, address attester) external {
        b = Batch(root, bytes32(0), fromBlock, toBlock, count, uint64(block.timestamp), attester, 0, false, "");
    }

    function batchIdOf(address, bytes32) external pure returns (uint256) { return 1; }
    function lastBatchOf(address) external pure returns (uint256) { return 1; }
    function isAttester(address) external pure returns (bool) { return true; }
    function batchValid(uint256) external pure returns (bool) { return true; }
    function getBatch(uint256) external view returns (Batch memory) { return b; }
    function attesterState(address) external pure returns (bool, bool, uint64, uint64, uint64) { return (true, false, 1, 0, 0); }
}
