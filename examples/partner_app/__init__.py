"""A small partner service that integrates with CHeKT, used as the sandbox's showcase."""
