// SPDX-License-Identifier: MIT
pragma solidity ^0.8.10;

/// @title MockPriceFeed
/// @notice A settable Chainlink-style price feed for Overlord's local chain. It exposes the
/// AggregatorV2V3 surface that AaveOracle and off-chain readers use, and emits the real
/// aggregator events (NewRound, then AnswerUpdated) on every update, so log-driven code sees
/// exactly what a Chainlink aggregator would emit.
contract MockPriceFeed {
  event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);
  event NewRound(uint256 indexed roundId, address indexed startedBy, uint256 startedAt);

  uint8 public immutable decimals;
  uint256 public constant version = 4;
  string public description;
  address public owner;

  int256 public latestAnswer;
  uint256 public latestTimestamp;
  uint256 public latestRound;

  mapping(uint256 => int256) public getAnswer;
  mapping(uint256 => uint256) public getTimestamp;

  constructor(uint8 decimals_, int256 initialAnswer, string memory description_) {
    decimals = decimals_;
    description = description_;
    owner = msg.sender;
    _update(initialAnswer);
  }

  function updateAnswer(int256 answer) external {
    require(msg.sender == owner, "not owner");
    _update(answer);
  }

  function getRoundData(
    uint80 roundId
  ) external view returns (uint80, int256, uint256, uint256, uint80) {
    return (roundId, getAnswer[roundId], getTimestamp[roundId], getTimestamp[roundId], roundId);
  }

  function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
    uint80 round = uint80(latestRound);
    return (round, latestAnswer, latestTimestamp, latestTimestamp, round);
  }

  function _update(int256 answer) internal {
    uint256 round = latestRound + 1;
    latestRound = round;
    latestAnswer = answer;
    latestTimestamp = block.timestamp;
    getAnswer[round] = answer;
    getTimestamp[round] = block.timestamp;
    emit NewRound(round, msg.sender, block.timestamp);
    emit AnswerUpdated(answer, round, block.timestamp);
  }
}
