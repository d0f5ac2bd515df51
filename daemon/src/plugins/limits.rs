//! What one plugin call may use, and the `ResourceLimiter` that enforces memory and table
//! caps while remembering which cap was hit (so a fault can be reported as `memory`).

use std::time::Duration;

/// Per-plugin limits, from `[plugins.limits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    pub deadline: Duration,
    pub memory_bytes: usize,
    pub output_bytes: usize,
    pub http_response_bytes: usize,
    pub log_lines_per_call: u32,
}

impl Default for PluginLimits {
    /// What a plugin gets when its `[plugins.limits]` says nothing.
    fn default() -> PluginLimits {
        PluginLimits {
            deadline: Duration::from_secs(10),
            memory_bytes: 64 << 20,
            output_bytes: 1 << 20,
            http_response_bytes: 4 << 20,
            log_lines_per_call: 100,
        }
    }
}

impl PluginLimits {
    /// What a bill call (`fetch-bill`, `parse-bill`) gets when `[plugins.bill_limits]` says
    /// nothing: a day's bill is megabytes where any other answer is kilobytes, and its
    /// download takes longer than a payment's round trip.
    pub fn bills() -> PluginLimits {
        PluginLimits {
            deadline: Duration::from_secs(60),
            memory_bytes: 512 << 20,
            output_bytes: 64 << 20,
            http_response_bytes: 64 << 20,
            log_lines_per_call: 100,
        }
    }
}

/// Table elements a plugin instance may have (Rust components need a few hundred).
pub const TABLE_ELEMENTS_MAX: usize = 20_000;
/// Core instances, tables and memories one component may create.
pub const INSTANCES_PER_CALL_MAX: usize = 16;

/// Enforces the memory and table caps of one call.
#[derive(Debug)]
pub struct CallLimiter {
    memory_bytes_max: usize,
    /// Set when the plugin tried to grow past its memory cap.
    pub memory_exceeded: bool,
}

impl CallLimiter {
    pub fn new(memory_bytes_max: usize) -> CallLimiter {
        CallLimiter {
            memory_bytes_max,
            memory_exceeded: false,
        }
    }
}

impl wasmtime::ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes_max {
            self.memory_exceeded = true;
            // Trap instead of letting `memory.grow` return -1: a plugin that runs out of
            // memory is broken, and a clean fault is easier to diagnose than a later panic.
            wasmtime::bail!(
                "plugin memory limit of {} bytes reached (asked for {desired})",
                self.memory_bytes_max
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= TABLE_ELEMENTS_MAX)
    }

    fn instances(&self) -> usize {
        INSTANCES_PER_CALL_MAX
    }

    fn tables(&self) -> usize {
        INSTANCES_PER_CALL_MAX
    }

    fn memories(&self) -> usize {
        INSTANCES_PER_CALL_MAX
    }
}
