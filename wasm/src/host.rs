//! The hostcalls the filter makes, as thin wrappers that never panic.
//!
//! A panic traps the VM, and a trapped VM fails every later request on that
//! worker (the proxy-wasm SDK's own wrappers `panic!` on host answers they
//! do not expect). These wrappers return `None`/`false` instead and
//! leave the decision to the caller.
#![allow(unsafe_code)]

use std::ptr::null_mut;

/// Header maps (values of the ABI's `MapType`).
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub enum HeaderMap {
    RequestHeaders = 0,
    ResponseHeaders = 2,
}

/// Log levels of the ABI.
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub enum LogLevel {
    Info = 2,
    Warn = 3,
    Error = 4,
}

/// Metric types of the ABI.
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub enum MetricType {
    Counter = 0,
    Gauge = 1,
    Histogram = 2,
}

const STATUS_OK: u32 = 0;
const STATUS_NOT_FOUND: u32 = 1;
const STATUS_CAS_MISMATCH: u32 = 8;
const BUFFER_PLUGIN_CONFIGURATION: u32 = 7;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
}

/// Takes ownership of a buffer the host allocated through the SDK's
/// `proxy_on_memory_allocate` (a boxed slice of exactly `size` bytes).
///
/// # Safety
/// `data` must be null or a pointer the host obtained from
/// `proxy_on_memory_allocate(size)` and handed to us, not yet freed.
unsafe fn take_host_buffer(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        // SAFETY: allocated by proxy_on_memory_allocate as a Box<[u8]> of
        // `size` bytes, so length and capacity are both `size`.
        unsafe { Vec::from_raw_parts(data, size, size) }
    }
}

/// Writes a line to Envoy's log.
pub fn log(level: LogLevel, message: &str) {
    // SAFETY: pointer and length describe a live &str.
    unsafe {
        proxy_log(level as u32, message.as_ptr(), message.len());
    }
}

/// A header's value as bytes; `None` when absent or when the host refuses.
pub fn header(map: HeaderMap, name: &str) -> Option<Vec<u8>> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: the out-pointers are valid for writes; the returned buffer is
    // taken over exactly once.
    unsafe {
        let status =
            proxy_get_header_map_value(map as u32, name.as_ptr(), name.len(), &mut data, &mut size);
        let buffer = take_host_buffer(data, size);
        (status == STATUS_OK).then_some(buffer)
    }
}

/// A header's value as UTF-8 text; `None` when absent, refused, or not
/// UTF-8 (such a value cannot name a version or match a host).
pub fn header_text(map: HeaderMap, name: &str) -> Option<String> {
    header(map, name).and_then(|bytes| String::from_utf8(bytes).ok())
}

/// Sets (replacing) a header. Returns whether the host accepted it.
pub fn set_header(map: HeaderMap, name: &str, value: &str) -> bool {
    // SAFETY: pointers and lengths describe live &strs.
    unsafe {
        proxy_replace_header_map_value(
            map as u32,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        ) == STATUS_OK
    }
}

/// Removes a header. Returns whether the host accepted the call.
pub fn remove_header(map: HeaderMap, name: &str) -> bool {
    // SAFETY: pointer and length describe a live &str.
    unsafe { proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()) == STATUS_OK }
}

/// The host's clock in nanoseconds since the Unix epoch; `None` if refused.
pub fn now_nanos() -> Option<u64> {
    let mut nanos: u64 = 0;
    // SAFETY: the out-pointer is valid for writes.
    let status = unsafe { proxy_get_current_time_nanoseconds(&mut nanos) };
    (status == STATUS_OK).then_some(nanos)
}

/// A property as raw bytes. `path` is the ABI's serialised path: segments
/// separated by NUL bytes, e.g. `b"response\0code"`.
pub fn property(path: &[u8]) -> Option<Vec<u8>> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: as in `header`.
    unsafe {
        let status = proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size);
        let buffer = take_host_buffer(data, size);
        (status == STATUS_OK && !buffer.is_empty()).then_some(buffer)
    }
}

/// An integer property (Envoy serialises int64 values as 8 little-endian
/// bytes).
pub fn property_i64(path: &[u8]) -> Option<i64> {
    let bytes = property(path)?;
    let array: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(i64::from_le_bytes(array))
}

/// The plugin configuration (the `StringValue` holding JSON).
pub fn plugin_configuration() -> Option<Vec<u8>> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: as in `header`.
    unsafe {
        let status = proxy_get_buffer_bytes(
            BUFFER_PLUGIN_CONFIGURATION,
            0,
            usize::MAX,
            &mut data,
            &mut size,
        );
        let buffer = take_host_buffer(data, size);
        (status == STATUS_OK).then_some(buffer)
    }
}

/// Defines a metric and returns its id; `None` if the host refuses.
pub fn define_metric(kind: MetricType, name: &str) -> Option<u32> {
    let mut id: u32 = 0;
    // SAFETY: pointer and length describe a live &str; out-pointer valid.
    let status = unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) };
    (status == STATUS_OK).then_some(id)
}

/// Adds `by` to a counter. Failures are ignored: losing counts is better
/// than failing a request.
pub fn increment(metric_id: u32, by: i64) {
    // SAFETY: plain values.
    unsafe {
        proxy_increment_metric(metric_id, by);
    }
}

/// Asks the host to call `proxy_on_tick` of the current root context every
/// `millis` milliseconds.
pub fn set_tick_period(millis: u32) -> bool {
    // SAFETY: plain value.
    unsafe { proxy_set_tick_period_milliseconds(millis) == STATUS_OK }
}

/// Records a histogram sample. Failures are ignored, as for `increment`.
pub fn record(metric_id: u32, value: u64) {
    // SAFETY: plain values.
    unsafe {
        proxy_record_metric(metric_id, value);
    }
}

/// A value in Envoy's shared data (one store per VM id, shared by every
/// worker's VM in the process).
#[derive(Debug)]
pub enum Shared {
    /// The value and its compare-and-swap token.
    Found(Vec<u8>, u32),
    /// No value under the key yet.
    Missing,
    /// The host refused the call.
    Failed,
}

/// Reads a shared-data value.
pub fn shared_data(key: &str) -> Shared {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    let mut cas: u32 = 0;
    // SAFETY: as in `header`; the cas out-pointer is valid for writes.
    unsafe {
        let status = proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas);
        let buffer = take_host_buffer(data, size);
        match status {
            STATUS_OK => Shared::Found(buffer, cas),
            STATUS_NOT_FOUND => Shared::Missing,
            _ => Shared::Failed,
        }
    }
}

/// What a shared-data write led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Stored.
    Ok,
    /// Another VM wrote the key since `cas` was read: read again.
    Conflict,
    /// The host refused the call.
    Failed,
}

/// Writes a shared-data value if the key still holds `cas` (0: whatever it
/// holds).
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Written {
    // SAFETY: pointers and lengths describe live slices.
    let status =
        unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) };
    match status {
        STATUS_OK => Written::Ok,
        STATUS_CAS_MISMATCH => Written::Conflict,
        _ => Written::Failed,
    }
}
