use napi_derive::napi;

#[napi]
pub fn protocol_version() -> u32 {
    1
}
