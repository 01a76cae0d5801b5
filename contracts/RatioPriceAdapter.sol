// SPDX-License-Identifier: MIT
pragma solidity ^0.8.10;

interface IPriceFeed {
  function latestAnswer() external view returns (int256);

  function latestTimestamp() external view returns (uint256);

  function latestRound() external view returns (uint256);
}

/// @title RatioPriceAdapter
/// @notice An LST-style derived price source for Overlord's local chain: the price is a
/// base feed's answer times an exchange ratio (18 decimals), like Aave's ratio CAPO adapters
/// for wstETH or rETH. One base-feed update therefore moves two reserves, and a ratio change
/// moves a price with no Chainlink event at all; both cases matter to the engine.
contract RatioPriceAdapter {
  event RatioUpdated(uint256 ratio);

  IPriceFeed public immutable baseFeed;
  uint8 public immutable decimals;
  string public description;
  address public owner;
  uint256 public ratio;

  constructor(address baseFeed_, uint8 decimals_, uint256 ratio_, string memory description_) {
    baseFeed = IPriceFeed(baseFeed_);
    decimals = decimals_;
    description = description_;
    owner = msg.sender;
    ratio = ratio_;
    emit RatioUpdated(ratio_);
  }

  function setRatio(uint256 ratio_) external {
    require(msg.sender == owner, "not owner");
    ratio = ratio_;
    emit RatioUpdated(ratio_);
  }

  function latestAnswer() public view returns (int256) {
    int256 base = baseFeed.latestAnswer();
    if (base <= 0) {
      return 0;
    }
    return (base * int256(ratio)) / 1e18;
  }

  function latestTimestamp() external view returns (uint256) {
    return baseFeed.latestTimestamp();
  }

  function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
    uint80 round = uint80(baseFeed.latestRound());
    uint256 updatedAt = baseFeed.latestTimestamp();
    return (round, latestAnswer(), updatedAt, updatedAt, round);
  }
}
