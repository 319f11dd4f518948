//! The proxy-wasm ABI (0.2.1) entry points the host calls.
//!
//! The filter exports only the callbacks it uses. Envoy skips a callback
//! the module does not export, so a request costs no VM entry for request
//! bodies, trailers, response bodies, `on_done` and the rest; and nothing
//! here keeps a boxed context per request (see [`crate::vm`]).
#![allow(unsafe_code)]

use std::mem::MaybeUninit;

use crate::vm;

/// `Action::Continue` of the ABI.
const CONTINUE: u32 = 0;

#[cfg(target_os = "wasi")]
extern "C" {
    fn __wasm_call_ctors();
}

/// The reactor's initialiser: runs the C library's and Rust's constructors
/// once, before any other export.
#[no_mangle]
pub extern "C" fn _initialize() {
    #[cfg(target_os = "wasi")]
    // SAFETY: called once by the host before any other export, as the WASI
    // reactor model requires.
    unsafe {
        __wasm_call_ctors();
    }
}

/// Declares the ABI version.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// Memory the host fills before handing it to the filter (header values,
/// properties, the configuration). The filter takes it back with
/// `Vec::from_raw_parts(ptr, size, size)` (see `host.rs`).
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut buffer: Vec<MaybeUninit<u8>> = Vec::with_capacity(size);
    // SAFETY: the capacity is `size`; the bytes stay uninitialised until the
    // host writes them, and are only read after it has.
    unsafe {
        buffer.set_len(size);
    }
    Box::into_raw(buffer.into_boxed_slice()).cast::<u8>()
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root_context_id: u32, _vm_configuration_size: u32) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, parent_context_id: u32) {
    vm::context_created(context_id, parent_context_id);
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(root_context_id: u32, _plugin_configuration_size: u32) -> u32 {
    u32::from(crate::root::configure(root_context_id))
}

#[no_mangle]
pub extern "C" fn proxy_on_tick(_root_context_id: u32) {
    vm::on_tick();
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(
    context_id: u32,
    _headers: u32,
    _end_of_stream: u32,
) -> u32 {
    crate::request::on_request_headers(context_id);
    CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(
    context_id: u32,
    _headers: u32,
    _end_of_stream: u32,
) -> u32 {
    crate::request::on_response_headers(context_id);
    CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_log(context_id: u32) {
    crate::request::on_log(context_id);
}

#[no_mangle]
pub extern "C" fn proxy_on_delete(context_id: u32) {
    vm::context_deleted(context_id);
}
