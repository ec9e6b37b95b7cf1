// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Puzzle bounties paid to whoever calls `claim` first with the answer: the classic target
/// of displacement front-running (a copier replays a pending claim with a higher fee).
contract Bounty {
    address public immutable owner;
    mapping(uint256 => bytes32) public puzzle; // round -> keccak256(answer)
    mapping(uint256 => uint256) public reward;
    mapping(uint256 => address) public winner;

    event Claimed(uint256 indexed round, address indexed by, uint256 reward);

    constructor() {
        owner = msg.sender;
    }

    function post(uint256 round, bytes32 answerHash) external payable {
        require(msg.sender == owner, "Bounty: not owner");
        require(puzzle[round] == bytes32(0), "Bounty: round exists");
        puzzle[round] = answerHash;
        reward[round] = msg.value;
    }

    function claim(bytes32 answer, uint256 round) external {
        require(puzzle[round] != bytes32(0) && keccak256(abi.encodePacked(answer)) == puzzle[round], "Bounty: wrong answer");
        require(winner[round] == address(0), "Bounty: already claimed");
        winner[round] = msg.sender;
        uint256 amount = reward[round];
        emit Claimed(round, msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        require(ok, "Bounty: payout");
    }
}
