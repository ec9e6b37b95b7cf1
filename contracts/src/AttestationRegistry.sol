// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title mevwatch attestation registry
/// @notice Stores Merkle roots of batches of final mevwatch alerts. Each root commits to
/// the canonical encodings of every alert of one batch (docs/attestation.md); anyone
/// holding an alert and its inclusion proof can check it against the root stored here,
/// as a batch of an attester they trust.
/// @dev Trust model:
/// - The owner (meant to be a cold key or a multisig, not the attester's hot key) adds
///   attesters and revokes them. A revoked attester cannot attest again, and its batches
///   after the one the owner names stay invalid for good (`batchValid`); the owner can
///   also revoke single batches.
/// - Roots are keyed per attester: another attester attesting the same root neither
///   blocks nor claims anybody else's batch.
/// - Each attester's batches cover strictly increasing, non-overlapping block ranges of
///   the monitored chain, so one alert has at most one attested final version per attester.
/// Batch ids start at 1; 0 means "none".
contract AttestationRegistry {
    struct Batch {
        bytes32 root;       // Merkle root of the batch's alert leaves
        bytes32 modelHash;  // the model that scored the alerts (or the hash of the set of models); 0 = exact rules only
        uint64 fromBlock;   // first and last block of the monitored chain the batch covers
        uint64 toBlock;
        uint32 count;       // number of leaves (alerts)
        uint64 attestedAt;  // block.timestamp of the attestation
        address attester;
        uint64 prevOfAttester; // the attester's previous batch (0: this is its first)
        bool revoked;       // revoked by the owner (revokeBatch)
        string uri;         // where the alerts can be fetched (optional)
    }

    struct AttesterState {
        bool allowed;        // may attest now
        bool revoked;        // revoked for good: cannot be allowed again
        uint64 lastBatch;    // id of its newest batch (0: none)
        uint64 revokedAt;    // block.number of the revocation (0: never)
        uint64 validThrough; // when revoked: its batches with ids up to this one stay valid
    }

    /// @notice the largest number of batch ids one paged read scans
    uint256 public constant MAX_SCAN = 1000;

    address public owner;
    address public pendingOwner;
    mapping(address => AttesterState) public attesterState;
    /// @notice attester => root => batch id (0: that attester did not attest that root)
    mapping(address => mapping(bytes32 => uint256)) public batchIdOf;
    Batch[] private _batches;

    event Attested(
        uint256 indexed batchId,
        bytes32 indexed root,
        address indexed attester,
        uint64 fromBlock,
        uint64 toBlock,
        uint32 count,
        bytes32 modelHash,
        string uri
    );
    event AttesterAdded(address indexed attester);
    event AttesterRevoked(address indexed attester, uint256 validThroughBatch, uint64 atBlock, uint64 atTime);
    event BatchRevoked(uint256 indexed batchId, address indexed attester);
    event OwnershipTransferStarted(address indexed previousOwner, address indexed newOwner);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    error NotOwner(address caller);
    error NotAttester(address caller);
    error DuplicateRoot(bytes32 root, uint256 batchId);
    error ZeroRoot();
    error EmptyBatch();
    error BadRange(uint64 fromBlock, uint64 toBlock);
    error RangeNotAfter(uint64 fromBlock, uint64 previousToBlock);
    error UnknownBatch(uint256 batchId);
    error ZeroAddress();
    error AttesterWasRevoked(address attester);
    error AlreadyAttester(address attester);
    error BadLimit(uint256 limit);

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    /// @param initialOwner manages attesters (a cold key or a multisig); 0 = the deployer
    /// @param firstAttester allowed to attest from the start; 0 = none yet
    constructor(address initialOwner, address firstAttester) {
        address o = initialOwner == address(0) ? msg.sender : initialOwner;
        owner = o;
        emit OwnershipTransferred(address(0), o);
        if (firstAttester != address(0)) _add(firstAttester);
    }

    // --- the owner ----------------------------------------------------------------------------

    function addAttester(address attester) external onlyOwner {
        _add(attester);
    }

    /// @notice Revoke an attester for good. Its batches with ids up to `validThroughBatch`
    /// stay valid (pass 0 to invalidate all of them, a large number to keep all made so far);
    /// every later one is invalid (`batchValid`). Records the block and time of revocation.
    function revokeAttester(address attester, uint256 validThroughBatch) external onlyOwner {
        AttesterState storage s = attesterState[attester];
        if (!s.allowed) revert NotAttester(attester);
        uint64 keep = validThroughBatch > s.lastBatch ? s.lastBatch : uint64(validThroughBatch);
        s.allowed = false;
        s.revoked = true;
        s.revokedAt = uint64(block.number);
        s.validThrough = keep;
        emit AttesterRevoked(attester, keep, uint64(block.number), uint64(block.timestamp));
    }

    /// @notice Revoke one batch (its alerts no longer verify).
    function revokeBatch(uint256 batchId) external onlyOwner {
        Batch storage b = _batch(batchId);
        b.revoked = true;
        emit BatchRevoked(batchId, b.attester);
    }

    /// @notice Two-step ownership transfer: the new owner must accept.
    function transferOwnership(address newOwner) external onlyOwner {
        pendingOwner = newOwner;
        emit OwnershipTransferStarted(owner, newOwner);
    }

    function acceptOwnership() external {
        if (msg.sender != pendingOwner) revert NotOwner(msg.sender);
        emit OwnershipTransferred(owner, msg.sender);
        owner = msg.sender;
        pendingOwner = address(0);
    }

    // --- attesters ----------------------------------------------------------------------------

    /// @notice Record a batch. Reverts for a caller that is not an attester, a root this
    /// attester attested already, a zero root, an empty batch, fromBlock > toBlock, or a
    /// range that does not start after the attester's previous batch.
    function attest(
        bytes32 root,
        uint64 fromBlock,
        uint64 toBlock,
        uint32 count,
        bytes32 modelHash,
        string calldata uri
    ) external returns (uint256 batchId) {
        AttesterState storage s = attesterState[msg.sender];
        if (!s.allowed) revert NotAttester(msg.sender);
        if (root == bytes32(0)) revert ZeroRoot();
        if (count == 0) revert EmptyBatch();
        if (fromBlock > toBlock) revert BadRange(fromBlock, toBlock);
        uint256 existing = batchIdOf[msg.sender][root];
        if (existing != 0) revert DuplicateRoot(root, existing);
        uint64 prev = s.lastBatch;
        if (prev != 0) {
            uint64 prevTo = _batches[prev - 1].toBlock;
            if (fromBlock <= prevTo) revert RangeNotAfter(fromBlock, prevTo);
        }
        _batches.push(Batch(root, modelHash, fromBlock, toBlock, count, uint64(block.timestamp), msg.sender, prev, false, uri));
        batchId = _batches.length;
        batchIdOf[msg.sender][root] = batchId;
        s.lastBatch = uint64(batchId);
        emit Attested(batchId, root, msg.sender, fromBlock, toBlock, count, modelHash, uri);
    }

    // --- reads --------------------------------------------------------------------------------

    function isAttester(address who) external view returns (bool) {
        return attesterState[who].allowed;
    }

    function lastBatchOf(address attester) external view returns (uint256) {
        return attesterState[attester].lastBatch;
    }

    function batchCount() external view returns (uint256) {
        return _batches.length;
    }

    function getBatch(uint256 batchId) external view returns (Batch memory) {
        return _batch(batchId);
    }

    /// @notice Whether a batch counts: not revoked itself, and its attester either still
    /// allowed or revoked after it (its id at most the attester's `validThrough`).
    function batchValid(uint256 batchId) external view returns (bool) {
        Batch storage b = _batch(batchId);
        if (b.revoked) return false;
        AttesterState storage s = attesterState[b.attester];
        return !s.revoked || batchId <= s.validThrough;
    }

    /// @notice Ids of the batches (of any attester) whose block range overlaps
    /// [fromBlock, toBlock], scanning at most `maxScan` ids (1..MAX_SCAN) from `startId`
    /// (0 = 1) upwards; `next` is the id to continue from, 0 when the scan reached the end.
    function batchesInRange(uint64 fromBlock, uint64 toBlock, uint256 startId, uint256 maxScan)
        external
        view
        returns (uint256[] memory ids, uint256 next)
    {
        if (maxScan == 0 || maxScan > MAX_SCAN) revert BadLimit(maxScan);
        uint256 n = _batches.length;
        uint256 id = startId == 0 ? 1 : startId;
        uint256 end = id + maxScan; // exclusive
        if (end > n + 1) end = n + 1;
        uint256[] memory buf = new uint256[](maxScan);
        uint256 found;
        for (; id < end; id++) {
            Batch storage b = _batches[id - 1];
            if (b.fromBlock <= toBlock && b.toBlock >= fromBlock) buf[found++] = id;
        }
        next = id <= n ? id : 0;
        ids = _trim(buf, found);
    }

    /// @notice Ids of one attester's batches overlapping [fromBlock, toBlock], newest first,
    /// following the attester's own chain of batches backwards from `startId` (0 = its
    /// newest) for at most `maxScan` (1..MAX_SCAN) batches; `next` is the id to continue
    /// from, 0 when there are no more (an attester's ranges are ordered, so the walk stops
    /// at the first batch entirely before fromBlock).
    function batchesOfInRange(address attester, uint64 fromBlock, uint64 toBlock, uint256 startId, uint256 maxScan)
        external
        view
        returns (uint256[] memory ids, uint256 next)
    {
        if (maxScan == 0 || maxScan > MAX_SCAN) revert BadLimit(maxScan);
        uint256 id = startId == 0 ? attesterState[attester].lastBatch : startId;
        if (id != 0 && _batch(id).attester != attester) revert UnknownBatch(id);
        uint256[] memory buf = new uint256[](maxScan);
        uint256 found;
        for (uint256 steps = 0; id != 0 && steps < maxScan; steps++) {
            Batch storage b = _batches[id - 1];
            if (b.toBlock < fromBlock) {
                id = 0;
                break;
            }
            if (b.fromBlock <= toBlock) buf[found++] = id;
            id = b.prevOfAttester;
        }
        next = id;
        ids = _trim(buf, found);
    }

    function _batch(uint256 batchId) private view returns (Batch storage) {
        if (batchId == 0 || batchId > _batches.length) revert UnknownBatch(batchId);
        return _batches[batchId - 1];
    }

    function _add(address attester) private {
        if (attester == address(0)) revert ZeroAddress();
        AttesterState storage s = attesterState[attester];
        if (s.revoked) revert AttesterWasRevoked(attester);
        if (s.allowed) revert AlreadyAttester(attester);
        s.allowed = true;
        emit AttesterAdded(attester);
    }

    function _trim(uint256[] memory buf, uint256 n) private pure returns (uint256[] memory out) {
        out = new uint256[](n);
        for (uint256 i = 0; i < n; i++) out[i] = buf[i];
    }
}
