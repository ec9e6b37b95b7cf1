// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title mevwatch attestation registry
/// @notice Stores Merkle roots of batches of final mevwatch alerts. Each root commits to
/// the canonical encodings of every alert of one batch (docs/attestation.md); anyone
/// holding an alert and its inclusion proof can check it against the root stored here.
/// @dev Only attesters named by the owner may attest. A root can be attested once.
/// Batch ids start at 1; 0 means "none".
contract AttestationRegistry {
    struct Batch {
        bytes32 root;       // Merkle root of the batch's alert leaves
        bytes32 modelHash;  // content hash of the model that scored the alerts; 0 = exact rules only
        uint64 fromBlock;   // first and last block of the monitored chain the batch covers
        uint64 toBlock;
        uint32 count;       // number of leaves (alerts)
        uint64 attestedAt;  // block.timestamp of the attestation
        address attester;
        string uri;         // where the alerts can be fetched (optional)
    }

    address public owner;
    address public pendingOwner;
    mapping(address => bool) public isAttester;
    /// @notice root => batch id (0: not attested)
    mapping(bytes32 => uint256) public batchIdOfRoot;
    /// @notice attester => id of its newest batch (0: none); what a restarted attester resumes from
    mapping(address => uint256) public lastBatchOf;
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
    event AttesterSet(address indexed attester, bool allowed);
    event OwnershipTransferStarted(address indexed previousOwner, address indexed newOwner);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    error NotOwner(address caller);
    error NotAttester(address caller);
    error DuplicateRoot(bytes32 root, uint256 batchId);
    error ZeroRoot();
    error EmptyBatch();
    error BadRange(uint64 fromBlock, uint64 toBlock);
    error UnknownBatch(uint256 batchId);
    error ZeroAddress();

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    constructor(address firstAttester) {
        owner = msg.sender;
        emit OwnershipTransferred(address(0), msg.sender);
        if (firstAttester != address(0)) {
            isAttester[firstAttester] = true;
            emit AttesterSet(firstAttester, true);
        }
    }

    function setAttester(address attester, bool allowed) external onlyOwner {
        if (attester == address(0)) revert ZeroAddress();
        isAttester[attester] = allowed;
        emit AttesterSet(attester, allowed);
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

    /// @notice Record a batch. Reverts for a caller that is not an attester, a root already
    /// attested, a zero root, an empty batch or fromBlock > toBlock.
    function attest(
        bytes32 root,
        uint64 fromBlock,
        uint64 toBlock,
        uint32 count,
        bytes32 modelHash,
        string calldata uri
    ) external returns (uint256 batchId) {
        if (!isAttester[msg.sender]) revert NotAttester(msg.sender);
        if (root == bytes32(0)) revert ZeroRoot();
        if (count == 0) revert EmptyBatch();
        if (fromBlock > toBlock) revert BadRange(fromBlock, toBlock);
        uint256 existing = batchIdOfRoot[root];
        if (existing != 0) revert DuplicateRoot(root, existing);
        _batches.push(Batch(root, modelHash, fromBlock, toBlock, count, uint64(block.timestamp), msg.sender, uri));
        batchId = _batches.length;
        batchIdOfRoot[root] = batchId;
        lastBatchOf[msg.sender] = batchId;
        emit Attested(batchId, root, msg.sender, fromBlock, toBlock, count, modelHash, uri);
    }

    function batchCount() external view returns (uint256) {
        return _batches.length;
    }

    function getBatch(uint256 batchId) external view returns (Batch memory) {
        if (batchId == 0 || batchId > _batches.length) revert UnknownBatch(batchId);
        return _batches[batchId - 1];
    }

    /// @notice Ids of the batches whose block range overlaps [fromBlock, toBlock], scanning
    /// ids from `startId` (1-based) and returning at most `limit` of them; `next` is the id
    /// to continue from (0 when the scan reached the end).
    function batchesInRange(uint64 fromBlock, uint64 toBlock, uint256 startId, uint256 limit)
        external
        view
        returns (uint256[] memory ids, uint256 next)
    {
        uint256 n = _batches.length;
        uint256[] memory buf = new uint256[](limit);
        uint256 found;
        uint256 id = startId == 0 ? 1 : startId;
        for (; id <= n && found < limit; id++) {
            Batch storage b = _batches[id - 1];
            if (b.fromBlock <= toBlock && b.toBlock >= fromBlock) buf[found++] = id;
        }
        ids = new uint256[](found);
        for (uint256 i = 0; i < found; i++) ids[i] = buf[i];
        next = id <= n ? id : 0;
    }
}
