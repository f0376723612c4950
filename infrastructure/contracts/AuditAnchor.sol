// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title AuditAnchor
/// @notice A public record of the roots of one append-only Merkle log (RFC 9162 section 2.1):
/// the root of the tree of `treeSize` leaves, one per anchored size. Anyone can read a root back
/// and check an inclusion or consistency proof against it; only the owner can add one.
/// @dev Roots are never replaced or removed, and tree sizes only grow, so a root read here once
/// stays the root of that size for good. Whether a new root extends the old ones (a consistency
/// proof) is for readers to check off-chain: the contract cannot see the leaves.
contract AuditAnchor {
    /// @notice The caller is not the account that deployed the contract.
    error NotOwner(address caller);
    /// @notice `treeSize` is not larger than the newest anchored size.
    error TreeSizeNotIncreasing(uint64 treeSize, uint64 latestTreeSize);
    /// @notice The zero hash is what `rootAt` answers for "none": it cannot be a root.
    error ZeroRoot();

    /// @notice A root was anchored for the tree of `treeSize` leaves.
    event Anchored(uint64 indexed treeSize, bytes32 root);

    /// @notice The only account allowed to anchor, set once at deployment.
    /// @dev A storage slot rather than an immutable, so the code on chain is exactly the
    /// artifact's deployedBytecode and a configured address can be checked with eth_getCode.
    address public owner;

    /// @notice The newest anchored tree size (0 before the first anchor).
    uint64 public latestTreeSize;

    mapping(uint64 treeSize => bytes32 root) private roots;

    constructor() {
        owner = msg.sender;
    }

    /// @notice Record `root` as the root of the tree of `treeSize` leaves.
    /// @dev Reverts unless the caller is the owner, `treeSize` is larger than every anchored
    /// size, and `root` is not zero.
    function anchor(uint64 treeSize, bytes32 root) external {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        if (treeSize <= latestTreeSize) revert TreeSizeNotIncreasing(treeSize, latestTreeSize);
        if (root == bytes32(0)) revert ZeroRoot();
        roots[treeSize] = root;
        latestTreeSize = treeSize;
        emit Anchored(treeSize, root);
    }

    /// @notice The root anchored for the tree of `treeSize` leaves, or zero if none was.
    function rootAt(uint64 treeSize) external view returns (bytes32) {
        return roots[treeSize];
    }
}
