//! The filesystem core (FUSE-free) and its thin fuser adapter.
