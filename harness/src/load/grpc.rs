//! gRPC on the shared engine: methods resolved at run time (`.proto` compiled in-process,
//! a protoset, or server reflection), JSON request messages encoded as dynamic messages, and
//! calls sent as HTTP/2 POSTs with gRPC framing, so gRPC gets the same open-loop scheduler.

use std::path::Path;

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};

use super::LoadError;
use crate::scenario::plan::{GrpcPlan, LoadPlan};

/// One resolved method.
#[derive(Debug, Clone)]
pub struct Method {
    /// `/package.Service/Method`.
    pub path: String,
    /// Request message type.
    pub input: MessageDescriptor,
    /// The server answers with a stream.
    pub server_streaming: bool,
}

/// Builds the descriptor pool the plan asks for.
pub fn pool(plan: &LoadPlan) -> Result<DescriptorPool, LoadError> {
    let g = plan.grpc.clone().unwrap_or(GrpcPlan {
        protos: vec![],
        import_paths: vec![],
        protoset: None,
        reflection: true,
        streaming: false,
    });
    if !g.protos.is_empty() {
        let mut includes = g.import_paths.clone();
        for p in &g.protos {
            if let Some(dir) = p.parent() {
                includes.push(dir.to_path_buf());
            }
        }
        let files: Vec<&Path> = g.protos.iter().map(|p| p.as_path()).collect();
        let fds = protox::compile(&files, includes).map_err(|e| {
            let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            let at = e.file().map(|f| format!(" (in {f})")).unwrap_or_default();
            LoadError::Plan(format!(
                "the .proto {} does not compile: {e}{at}",
                names.join(", ")
            ))
        })?;
        return DescriptorPool::from_file_descriptor_set(fds)
            .map_err(|e| LoadError::Plan(format!("the .proto descriptors are invalid: {e}")));
    }
    if let Some(p) = &g.protoset {
        let bytes = std::fs::read(p)
            .map_err(|e| LoadError::Plan(format!("protoset {}: {e}", p.display())))?;
        return DescriptorPool::decode(bytes.as_slice()).map_err(|e| {
            LoadError::Plan(format!(
                "protoset {} is not a FileDescriptorSet: {e}",
                p.display()
            ))
        });
    }
    super::reflection::fetch(&plan.base_url)
}

/// Finds `package.Service/Method` (a leading `/` is allowed) in `pool`.
pub fn method(pool: &DescriptorPool, name: &str) -> Result<Method, LoadError> {
    let name = name.trim_start_matches('/');
    let (service, method) = name
        .rsplit_once('/')
        .ok_or_else(|| LoadError::Plan(format!("\"{name}\" is not package.Service/Method")))?;
    let services: Vec<String> = pool.services().map(|s| s.full_name().to_string()).collect();
    let svc = pool.get_service_by_name(service).ok_or_else(|| {
        LoadError::Plan(format!(
            "unknown gRPC service \"{service}\"; known: {}",
            services.join(", ")
        ))
    })?;
    let m = svc.methods().find(|m| m.name() == method).ok_or_else(|| {
        let known: Vec<String> = svc.methods().map(|m| m.name().to_string()).collect();
        LoadError::Plan(format!(
            "service {service} has no method \"{method}\"; it has: {}",
            known.join(", ")
        ))
    })?;
    Ok(Method {
        path: format!("/{service}/{method}"),
        input: m.input(),
        server_streaming: m.is_server_streaming(),
    })
}

/// Encodes a JSON request as one length-prefixed gRPC frame.
pub fn frame(input: &MessageDescriptor, json: &str) -> Result<Bytes, String> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    let mut de = serde_json::Deserializer::from_str(json);
    let msg = DynamicMessage::deserialize(input.clone(), &mut de)
        .map_err(|e| format!("the JSON does not fit {}: {e}", input.full_name()))?;
    let len = msg.encoded_len();
    let mut buf = BytesMut::with_capacity(5 + len);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    msg.encode(&mut buf).map_err(|e| e.to_string())?;
    Ok(buf.freeze())
}

/// Counts complete gRPC messages in a stream of body chunks (5-byte prefix + payload).
#[derive(Debug, Default)]
pub struct FrameCounter {
    /// Bytes still to skip of the current message (payload).
    left: u64,
    /// Prefix bytes collected so far (a fixed array: no allocation per call).
    head: [u8; 5],
    /// How many of `head` are filled.
    filled: usize,
    /// Complete messages seen.
    pub messages: u64,
}

impl FrameCounter {
    /// Feeds one chunk.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            if self.left > 0 {
                let n = (chunk.len() as u64).min(self.left);
                self.left -= n;
                chunk = &chunk[n as usize..];
                if self.left == 0 {
                    self.messages += 1;
                }
                continue;
            }
            let n = (5 - self.filled).min(chunk.len());
            self.head[self.filled..self.filled + n].copy_from_slice(&chunk[..n]);
            self.filled += n;
            chunk = &chunk[n..];
            if self.filled == 5 {
                let len =
                    u32::from_be_bytes([self.head[1], self.head[2], self.head[3], self.head[4]]);
                self.filled = 0;
                if len == 0 {
                    self.messages += 1;
                } else {
                    self.left = u64::from(len);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_frames_across_chunks() {
        let mut c = FrameCounter::default();
        let mut all = Vec::new();
        for len in [3u32, 0, 10] {
            all.push(0);
            all.extend_from_slice(&len.to_be_bytes());
            all.extend(std::iter::repeat_n(7u8, len as usize));
        }
        for chunk in all.chunks(4) {
            c.feed(chunk);
        }
        assert_eq!(c.messages, 3);
    }
}
