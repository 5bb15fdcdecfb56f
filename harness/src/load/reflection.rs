//! gRPC server reflection (grpc.reflection.v1): the descriptors of every service the server
//! lists, fetched once before the load starts.

use std::collections::BTreeMap;
use std::time::Duration;

use prost::Message;
use prost_reflect::DescriptorPool;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use super::LoadError;

/// Asks the server at `base_url` for its services and their file descriptors.
pub fn fetch(base_url: &str) -> Result<DescriptorPool, LoadError> {
    // The target did not answer as a gRPC server with reflection: it is not what the plan
    // says (or not up), which is no mistake in the scenario file.
    let err = |m: String| {
        LoadError::Target(format!(
            "gRPC reflection at {base_url}: {m}; the target does not answer as a gRPC server \
             with server reflection (give .proto files or a protoset if it has no reflection)"
        ))
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| err(e.to_string()))?;
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(base_url.to_string())
            .map_err(|e| err(e.to_string()))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .connect()
            .await
            .map_err(|e| err(format!("cannot connect: {e}")))?;
        let mut client = ServerReflectionClient::new(channel);
        let ask = |r: MessageRequest| ServerReflectionRequest {
            host: String::new(),
            message_request: Some(r),
        };
        let mut requests = vec![ask(MessageRequest::ListServices(String::new()))];
        let mut files: BTreeMap<String, prost_types::FileDescriptorProto> = BTreeMap::new();
        let mut listed = false;
        while !requests.is_empty() {
            let batch = std::mem::take(&mut requests);
            let mut stream = client
                .server_reflection_info(tokio_stream::iter(batch))
                .await
                .map_err(|s| err(format!("{} {}", s.code(), s.message())))?
                .into_inner();
            while let Some(resp) = stream
                .message()
                .await
                .map_err(|s| err(s.message().to_string()))?
            {
                match resp.message_response {
                    Some(MessageResponse::ListServicesResponse(list)) if !listed => {
                        listed = true;
                        for s in list.service {
                            if !s.name.starts_with("grpc.reflection.") {
                                requests.push(ask(MessageRequest::FileContainingSymbol(s.name)));
                            }
                        }
                    }
                    Some(MessageResponse::FileDescriptorResponse(f)) => {
                        for raw in f.file_descriptor_proto {
                            let fd = prost_types::FileDescriptorProto::decode(raw.as_slice())
                                .map_err(|e| err(format!("bad descriptor: {e}")))?;
                            files.insert(fd.name().to_string(), fd);
                        }
                    }
                    Some(MessageResponse::ErrorResponse(e)) => {
                        return Err(err(format!("error {}: {}", e.error_code, e.error_message)));
                    }
                    _ => {}
                }
            }
        }
        let mut pool = DescriptorPool::new();
        pool.add_file_descriptor_protos(files.into_values())
            .map_err(|e| err(format!("descriptors do not resolve: {e}")))?;
        Ok(pool)
    })
}
