//! embedded-nal adapters for sinew's protocol cores (being written).
#![no_std]
