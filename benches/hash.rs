//! Throughput of the SMH hashes: the SHA-256 chain (beginningHash/fullHash),
//! CRC-64/XZ, and both together as the write path feeds them.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use smhfs::smh::hash::{crc64, ContentHasher, Crc64};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let size = 64 * 1024 * 1024;
    let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 4096) as u8).collect();
    let mut g = c.benchmark_group("smh_hash");
    g.throughput(Throughput::Bytes(size as u64));
    g.sample_size(10);
    g.bench_function(BenchmarkId::new("crc64", "64MiB"), |b| {
        b.iter(|| black_box(crc64(black_box(&data))))
    });
    g.bench_function(BenchmarkId::new("sha256_chain_plus_crc64", "64MiB"), |b| {
        b.iter(|| {
            let mut h = ContentHasher::new();
            for chunk in data.chunks(128 * 1024) {
                h.update(chunk);
            }
            black_box(h.finish())
        })
    });
    g.bench_function(BenchmarkId::new("crc64_incremental_128k", "64MiB"), |b| {
        b.iter(|| {
            let mut h = Crc64::new();
            for chunk in data.chunks(128 * 1024) {
                h.update(chunk);
            }
            black_box(h.value())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
