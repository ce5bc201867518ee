//! Mount arguments and `-o` options.
