//! What one plugin call may use, and the `ResourceLimiter` that enforces memory and table
//! caps while remembering which cap was hit (so a fault can be reported as `memory`).

use std::time::Duration;

use crate::config::PluginLimitsConfig;

/// Per-plugin limits, from `[plugins.limits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    pub deadline: Duration,
    pub memory_bytes: usize,
    pub output_bytes: usize,
    pub http_response_bytes: usize,
    pub log_lines_per_call: u32,
}

impl PluginLimits {
    pub fn from_config(config: &PluginLimitsConfig) -> PluginLimits {
        let bytes = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        PluginLimits {
            deadline: Duration::from_millis(*config.deadline_ms.get_ref()),
            memory_bytes: bytes(*config.memory_bytes.get_ref()),
            output_bytes: bytes(*config.output_bytes.get_ref()),
            http_response_bytes: bytes(*config.http_response_bytes.get_ref()),
            log_lines_per_call: *config.log_lines_per_call.get_ref(),
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
