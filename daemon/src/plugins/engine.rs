//! The wasmtime engine: component model, Cranelift, pooling allocator, epoch interruption,
//! and nothing the plugin contract does not need.

use std::time::Duration;

use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig,
};

use super::limits::{INSTANCES_PER_CALL_MAX, TABLE_ELEMENTS_MAX};
use super::settings::PLUGIN_MEMORY_BYTES_MAX;

/// How often the epoch advances; deadlines are checked (and busy plugins yield) per tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);
/// Wasm stack per call: deep recursion traps here instead of exhausting the host.
const WASM_STACK_BYTES: usize = 512 * 1024;
/// The host stack an async call runs on (wasm stack plus room for host frames).
const ASYNC_STACK_BYTES: usize = 2 * 1024 * 1024;
/// Freed instance slots whose memory is reset together.
const DECOMMIT_BATCH: usize = 16;
/// Per pooled memory or table: how much of what a call wrote is reset in place, and stays
/// resident, when the slot is freed. Only with Linux's `PAGEMAP_SCAN` (6.7+), which finds
/// exactly the pages written; beyond this, and without it, pages go back to the OS.
const RESET_IN_PLACE_BYTES: usize = 1 << 20;

/// An engine sized for `max_concurrent_calls` live instances, with its epoch ticker.
pub fn new_engine(max_concurrent_calls: u32) -> wasmtime::Result<Engine> {
    let calls = max_concurrent_calls.max(1);
    let per_call = INSTANCES_PER_CALL_MAX as u32;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(calls)
        .total_core_instances(calls * 4)
        .total_memories(calls * 2)
        .total_tables(calls * 4)
        .total_stacks(calls)
        .max_core_instances_per_component(per_call)
        .max_memories_per_component(per_call)
        .max_tables_per_component(per_call)
        .table_elements(TABLE_ELEMENTS_MAX)
        .max_memory_size(PLUGIN_MEMORY_BYTES_MAX as usize)
        // Return used pages to the OS in batches: one madvise per call was a measurable part
        // of a fresh-instance call (BENCHMARKS.md).
        .decommit_batch_size(DECOMMIT_BATCH);
    // Handing a call's pages back with madvise cost every next call its page faults, and each
    // madvise a TLB flush on the other core: ~15 % of a durable payment's CPU. Resetting the
    // written pages in place made payments ~25 % cheaper (BENCHMARKS.md, "What was tried"). Without
    // the scan, keeping pages resident would mean a memset of the whole range per call.
    let reset_in_place = PoolingAllocationConfig::is_pagemap_scan_available();
    if reset_in_place {
        pool.pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(RESET_IN_PLACE_BYTES)
            .table_keep_resident(RESET_IN_PLACE_BYTES);
    }
    tracing::debug!(
        reset_in_place,
        "plugin slots: written pages reset in place (PAGEMAP_SCAN), or decommitted"
    );

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .cranelift_opt_level(OptLevel::Speed)
        .epoch_interruption(true)
        .max_wasm_stack(WASM_STACK_BYTES)
        .async_stack_size(ASYNC_STACK_BYTES)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        // Proposals the plugin contract does not use stay off: less to trust. (Threads, GC,
        // stack switching and component-model async are not even compiled in: see the
        // wasmtime features in the workspace Cargo.toml.)
        .wasm_memory64(false)
        .wasm_multi_memory(false);
    let engine = Engine::new(&config)?;
    start_epoch_ticker(&engine);
    Ok(engine)
}

/// Advances the engine's epoch every tick until the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("paygate-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("cannot start the epoch ticker thread");
}
