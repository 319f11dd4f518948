//! Stand-in proxy-wasm modules, as WebAssembly text: every callback
//! returns at once, except what `on_request_headers` does.

/// What a stub module's `proxy_on_request_headers` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRequest {
    /// Continue at once: the least any wasm filter costs.
    Continue,
    /// Trap (`unreachable`), as a panicking filter would.
    Trap,
}

/// The module's text; parse it with the `wat` crate.
pub fn wat(on_request: OnRequest) -> String {
    let request_headers = match on_request {
        OnRequest::Continue => "i32.const 0",
        OnRequest::Trap => "unreachable",
    };
    format!(
        r#"(module
  (memory (export "memory") 2)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) i32.const 65536)
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_on_configure") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) {request_headers})
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) i32.const 0)
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_done") (param i32) (result i32) i32.const 1)
  (func (export "proxy_on_delete") (param i32)))"#
    )
}
