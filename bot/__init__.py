"""The platform-neutral core of paperboy: papers, commands, digests and daily posts."""
