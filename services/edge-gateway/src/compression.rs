//! Response compression by `Accept-Encoding` (zstd, br, gzip, the client's preference by q-value)
//! for complete responses above a size threshold.
//!
//! Never compressed: gRPC and gRPC-Web (they carry their own per-message compression), streams
//! (SSE, NDJSON: a compressor holds bytes back until its buffer fills, which would delay events),
//! images, and anything smaller than `http.compression.min_size_bytes`, where the headers cost
//! more than the bytes saved.

use http_body::Body;
use tower::Layer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::compression::{Compression, CompressionLayer};

use crate::config::CompressionConfig;

/// The gateway's service wrapped in compression.
pub type Compress<S> = Compression<S, Policy>;

/// Which responses are compressed.
#[derive(Clone, Debug)]
pub struct Policy {
    enabled: bool,
    above: SizeAbove,
}

impl Predicate for Policy {
    fn should_compress<B>(&self, response: &http::Response<B>) -> bool
    where
        B: Body,
    {
        self.enabled
            // A body of unknown length is a stream.
            && response.body().size_hint().exact().is_some()
            && self.above.should_compress(response)
            && NotForContentType::GRPC.should_compress(response)
            && NotForContentType::SSE.should_compress(response)
            && NotForContentType::IMAGES.should_compress(response)
    }
}

#[derive(Clone, Debug)]
pub struct Compressor {
    policy: Policy,
}

impl Compressor {
    pub fn new(config: &CompressionConfig) -> Compressor {
        Compressor {
            policy: Policy {
                enabled: config.enabled,
                above: SizeAbove::new(config.min_size_bytes),
            },
        }
    }

    pub fn layer<S>(&self, inner: S) -> Compress<S> {
        CompressionLayer::new()
            .gzip(true)
            .br(true)
            .zstd(true)
            .no_deflate()
            .compress_when(self.policy.clone())
            .layer(inner)
    }
}
