//! Bytes a configuration needs on each device and on the host. Pure arithmetic over [`ModelFacts`].
//!
//! Weights are exact (tensor sizes, placed as llama.cpp places them); the KV cache is exact (llama.cpp's
//! cell counts and row sizes); the compute buffer is an estimate of the peak of live activations in one
//! ubatch, calibrated against llama.cpp's own reservations — see `docs/MEMORY-MODEL.md`.

use serde::Serialize;

use crate::model::facts::{ModelFacts, Owner, Span, TensorKind};
use crate::model::gguf::GgmlType;
use crate::model::gguf::types::{F16, F32};

/// llama.cpp pads the context (and the sliding-window cache) to a multiple of 256 cells.
pub const CTX_PAD_TOKENS: u64 = 256;

/// One candidate configuration, in llama.cpp's terms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    /// Layers on each GPU, in device order; the output layer counts as the last layer (llama.cpp's -ngl).
    pub gpu_layers: Vec<u32>,
    pub n_ctx_tokens: u64,
    pub cache_k: GgmlType,
    pub cache_v: GgmlType,
    pub n_ubatch_tokens: u64,
    pub flash_attn: bool,
    pub n_seq: u64,
    /// Give sliding-window layers a full-size cache. llama.cpp's library default is true; run-fit,
    /// like llama-server, loads with false and plans for it.
    pub swa_full: bool,
    /// llama.cpp's op offload (on by default): batches of at least 32 tokens that use weights in host
    /// memory run on the first GPU, which then holds a copy of those weights. Off: `--no-op-offload`.
    pub op_offload: bool,
    /// The host repacks CPU-resident weights for its kernels (x86 AVX2: `Host::cpu_repack`).
    pub cpu_repack: bool,
    /// Weights mapped from the file (llama.cpp's default) rather than read into memory (`--no-mmap`).
    pub use_mmap: bool,
    /// `--mlock`: the mapping is locked in RAM, so none of its pages can be dropped.
    pub use_mlock: bool,
    /// Tensor buffer-type overrides (llama.cpp's `-ot`), in order: the first that matches a tensor
    /// places it. The user's pins first, then the planner's experts in RAM.
    pub overrides: Vec<Override>,
}

/// Where a tensor or layer lives: `Some(device)`, or the host (`None`).
pub type Place = Option<usize>;

/// One `-ot PATTERN=DEVICE`: the tensors it matches go to `place`, whatever their layer's place.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Override {
    /// The regular expression llama.cpp searches tensor names with.
    pub pattern: String,
    pub place: Place,
    /// Indices into `ModelFacts::weights.spans` of the tensors the pattern matches (resolved once,
    /// by `fit::moe`, so that a footprint never runs a regular expression).
    #[serde(skip)]
    pub spans: Vec<usize>,
}

impl Config {
    pub fn n_gpu_layers(&self) -> u32 {
        self.gpu_layers.iter().sum()
    }
}

/// What one device (or the host) holds for a configuration, as llama.cpp's buffer log counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Bytes {
    /// Model buffers: mapped or loaded weights.
    pub weights: u64,
    /// The CPU backend's repacked copies of some weights (`CPU_REPACK`; host only).
    pub repack: u64,
    pub kv: u64,
    pub compute: u64,
    /// Of `weights`, mapped file pages nothing reads after loading (the sources of repacked tensors,
    /// other devices' layers inside the mapped range).
    pub unread: u64,
    /// Of those, what the kernel may drop when memory is short (all of it, unless `--mlock`): it does
    /// not count against free RAM.
    pub evictable: u64,
    /// Of the weights read here (`weights_read`), the routed experts' (a token reads its share).
    pub experts: u64,
}

impl Bytes {
    /// Everything llama.cpp allocates or maps here.
    pub fn total(&self) -> u64 {
        self.weights + self.repack + self.kv + self.compute
    }

    /// What must stay in memory: the total less the pages that can be dropped.
    pub fn resident(&self) -> u64 {
        self.total() - self.evictable
    }

    /// Weight bytes that are really read (a token reads each once): the copies in use, not their
    /// unused mapped sources.
    pub fn weights_read(&self) -> u64 {
        self.weights + self.repack - self.unread
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Footprint {
    pub devices: Vec<Bytes>,
    pub host: Bytes,
}

/// Where each of the n_layer + 1 layers (the last is the output layer) lives: `Some(device)` or the host.
pub fn placement(n_layer: u32, gpu_layers: &[u32]) -> Vec<Option<usize>> {
    let total = n_layer + 1;
    let n_gpu: u32 = gpu_layers.iter().sum::<u32>().min(total);
    let first_gpu = total - n_gpu;
    let mut owners = vec![None; first_gpu as usize];
    for (device, &count) in gpu_layers.iter().enumerate() {
        owners.extend(std::iter::repeat_n(Some(device), count as usize));
    }
    owners.truncate(total as usize);
    owners
}

/// Where a tensor goes by its layer alone (the input layer stays on the host).
fn layer_place(owner: Owner, owners: &[Place], n_layer: usize) -> Place {
    match owner {
        Owner::Input => None,
        Owner::Layer(l) => owners.get(l as usize).copied().flatten(),
        Owner::Output => owners.get(n_layer).copied().flatten(),
    }
}

/// Each tensor's place: its layer's, unless an override names it (the first one that does wins, as
/// in llama.cpp's `llama_model::load_tensors`).
pub fn span_places(facts: &ModelFacts, config: &Config, owners: &[Place]) -> Vec<Place> {
    let n_layer = facts.n_layer as usize;
    let mut places: Vec<Place> = facts.weights.spans.iter().map(|s| layer_place(s.owner, owners, n_layer)).collect();
    let mut placed = vec![false; places.len()];
    for o in &config.overrides {
        let n = places.len();
        for &i in o.spans.iter().filter(|&&i| i < n) {
            if !placed[i] {
                (places[i], placed[i]) = (o.place, true);
            }
        }
    }
    places
}

/// The bytes llama.cpp maps for the CPU's model buffer: per file, from the first to the last byte of the
/// host-resident tensors that are not repacked (`llama_model_loader::get_mapping_range`).
pub fn mapped_bytes(facts: &ModelFacts, places: &[Place], cpu_repack: bool) -> u64 {
    let mut ranges: Vec<(u32, u64, u64)> = Vec::new();
    let on_host = facts.weights.spans.iter().zip(places).filter(|(_, p)| p.is_none()).map(|(s, _)| s);
    for s in on_host.filter(|s| !(cpu_repack && s.repacked)) {
        match ranges.iter_mut().find(|r| r.0 == s.shard) {
            Some(r) => (r.1, r.2) = (r.1.min(s.start), r.2.max(s.end)),
            None => ranges.push((s.shard, s.start, s.end)),
        }
    }
    ranges.iter().map(|(_, first, last)| last - first).sum()
}

/// KV cells a layer holds: the padded context, or for a sliding-window layer only the window
/// (llama_kv_cache_iswa: pad256(min(n_ctx, n_swa · n_seq + n_ubatch))).
pub fn kv_cells(facts: &ModelFacts, config: &Config, layer: usize) -> u64 {
    let n_ctx = config.n_ctx_tokens.next_multiple_of(CTX_PAD_TOKENS);
    match &facts.sliding_window {
        Some(sw) if !config.swa_full && sw.layers.get(layer).copied().unwrap_or(false) => {
            n_ctx.min(sw.window_tokens * config.n_seq + config.n_ubatch_tokens).next_multiple_of(CTX_PAD_TOKENS)
        }
        _ => n_ctx,
    }
}

/// KV cache (or recurrent state) bytes of one layer.
pub fn kv_layer_bytes(facts: &ModelFacts, config: &Config, layer: usize) -> u64 {
    if let Some(rec) = &facts.recurrent
        && rec.layers.get(layer).copied().unwrap_or(false)
    {
        return rec.state_bytes_per_seq * config.n_seq.max(1);
    }
    let heads = facts.n_head_kv.get(layer).copied().unwrap_or(0);
    if heads == 0 {
        return 0;
    }
    // Without flash attention V is stored transposed, and llama.cpp then sizes every layer's V by the
    // widest layer (llama_kv_cache: n_embd_v_gqa_max when v_trans).
    let v_heads = if config.flash_attn { heads } else { facts.n_head_kv.iter().copied().max().unwrap_or(heads) };
    let per_cell =
        config.cache_k.row_bytes(facts.head_dim_k * heads) + config.cache_v.row_bytes(facts.head_dim_v * v_heads);
    kv_cells(facts, config, layer) * per_cell
}

/// KV bytes of the whole model for one token of context, at full (non-window) size: the figure users compare.
pub fn kv_bytes_per_token(facts: &ModelFacts, cache_k: GgmlType, cache_v: GgmlType) -> f64 {
    let per_layer =
        |heads: u64| (cache_k.row_bytes(facts.head_dim_k * heads) + cache_v.row_bytes(facts.head_dim_v * heads)) as f64;
    facts.n_head_kv.iter().map(|&h| per_layer(h)).sum()
}

/// The pieces a compute buffer is made of, per ubatch (bytes).
#[derive(Clone, Copy)]
struct Parts {
    /// One n_embd-wide f32 row per ubatch token: the residual stream, a norm, a layer's output.
    row: u64,
    /// A layer's feed-forward intermediates (gate, up and their product; per active expert).
    ffn: u64,
    /// A layer's peak when its routed experts run elsewhere.
    peak_without_experts: u64,
    /// The attention masks, one per cache (full and sliding-window).
    masks: u64,
    /// The larger of a layer's attention working set and its FFN intermediates.
    layer_peak: u64,
    /// The logits of every token of the ubatch.
    logits: u64,
}

fn parts(facts: &ModelFacts, config: &Config) -> Parts {
    let f32b = F32.block_bytes;
    let ub = config.n_ubatch_tokens;
    let n_kv = config.n_ctx_tokens.next_multiple_of(CTX_PAD_TOKENS);
    let n_head = facts.n_head.iter().copied().max().unwrap_or(0);
    let head_dim = facts.head_dim_k.max(facts.head_dim_v);
    let mask_elem = if config.flash_attn { F16.block_bytes } else { f32b };
    let mut masks = 0;
    let mut widest_cache = 0;
    let sliding = |l: usize| facts.sliding_window.as_ref().is_some_and(|sw| sw.layers.get(l).copied().unwrap_or(false));
    for (cells, is_swa) in [(n_kv, false), (kv_cells_swa(facts, config), true)] {
        if (0..facts.n_layer as usize).any(|l| sliding(l) == is_swa) {
            masks += cells * ub * mask_elem;
            widest_cache = widest_cache.max(cells);
        }
    }
    let attention = if config.flash_attn {
        // Two of Q, K, V and the attention output live at once (measured where attention is a layer's
        // peak: the layers of a mixture of experts whose experts run elsewhere, moe-mixtral-mini).
        2 * n_head * head_dim * ub * f32b
    } else {
        // KQ scores (softmax in place) over the whole cache, per head, plus Q and the output.
        widest_cache * ub * n_head * f32b + 2 * n_head * head_dim * ub * f32b
    };
    let experts = if facts.n_expert > 0 { facts.n_expert_used.max(1) } else { 1 };
    let ffn = 3 * facts.n_ff * ub * f32b * experts;
    Parts {
        row: facts.n_embd * ub * f32b,
        ffn,
        // A device whose layers keep their routed experts elsewhere runs only attention and the
        // shared experts (measured on loopback RPC devices: moe-qwen-mini, docs/MEMORY-MODEL.md).
        peak_without_experts: attention.max(3 * facts.n_ff_shared * ub * f32b),
        masks,
        layer_peak: attention.max(ffn),
        logits: facts.n_vocab * ub * f32b,
    }
}

/// The compute buffer the host's CPU backend reserves for one ubatch when it runs layers (or the
/// output). See docs/MEMORY-MODEL.md for the derivation.
///
/// ggml's allocator reuses memory, so the buffer is the peak of simultaneously live activations:
/// a few rows of the residual stream, the attention masks (one per cache: full and sliding-window),
/// then the largest of the attention working set (without flash attention the KQ scores over the
/// whole cache), the FFN intermediates, and with the output layer the logits of every token in the
/// ubatch. Calibrated on the CPU backend against llama.cpp's own reservation.
pub fn compute_bytes(facts: &ModelFacts, config: &Config, has_layers: bool, has_output: bool) -> u64 {
    if !has_layers && !has_output {
        return 0;
    }
    let p = parts(facts, config);
    let layers_peak = if has_layers { p.layer_peak } else { 0 };
    let logits = if has_output { p.logits } else { 0 };
    RESIDUAL_ROWS * p.row + p.masks + layers_peak.max(logits)
}

/// The compute buffer of an offload device (a GPU, a remote RPC device): the scheduler gives the
/// device's part of the graph its own inputs (the masks, the residual stream arriving from the previous
/// device or the host), and with pipeline parallelism [`PIPELINE_COPIES`] copies of them that stay
/// allocated. Measured on loopback RPC devices (llama.cpp's CPU backend behind ggml's device-side
/// scheduling), SmolLM2 and Gemma 3, two contexts, partial and full offload, one and two devices:
/// - the device that holds layer 0 (everything offloaded) receives the embeddings: its inputs are the
///   masks and four rows, its peak a layer's or the logits;
/// - any other device: the masks and two rows beside a layer's peak, or one row beside the logits; under
///   pipeline parallelism the masks and one row per copy, beside either.
fn device_compute_bytes(p: &Parts, has_first: bool, has_layers: bool, has_output: bool, pipeline: bool) -> u64 {
    if !has_layers && !has_output {
        return 0;
    }
    let layer = if has_layers { p.layer_peak } else { 0 };
    let copies = if pipeline { PIPELINE_COPIES } else { 1 };
    match (has_first, pipeline) {
        (true, _) => copies * (p.masks + 4 * p.row) + layer.max(if has_output { p.logits } else { 0 }),
        (false, true) => copies * (p.masks + p.row) + layer.max(if has_output { p.logits + p.row } else { 0 }),
        (false, false) => {
            let layer_phase = if has_layers { p.masks + 2 * p.row + layer } else { 0 };
            // Masks smaller than a row (short contexts of small models: SmolLM2 at 768 and 1024 tokens)
            // end up beside the logits with four rows in ggml's allocator; counted whenever it can happen.
            let beside_logits = if p.masks < p.row { p.masks + 4 * p.row } else { p.row };
            layer_phase.max(if has_output { p.logits + beside_logits } else { 0 })
        }
    }
}

/// The host's compute buffer when every layer and the output run on devices: it looks up the input
/// embeddings and holds the graph's inputs (the masks), under pipeline parallelism once per copy.
fn host_inputs_bytes(p: &Parts, pipeline: bool) -> u64 {
    let copies = if pipeline { PIPELINE_COPIES } else { 1 };
    copies * (p.masks + 2 * p.row) + 2 * p.row
}

/// ggml's `GGML_SCHED_MAX_COPIES` (4 in llama.cpp's build): with pipeline parallelism the scheduler
/// keeps this many copies of every split's inputs, so that ubatches can overlap across devices.
pub const PIPELINE_COPIES: u64 = 4;

/// llama.cpp turns on pipeline parallelism (llama_context: "pipeline parallelism enabled") when the
/// model spans more than one device, every layer and the output are offloaded, layers are split whole
/// and no tensor is overridden; every GPU backend and RPC supports the async compute and events it
/// needs.
pub fn pipeline_parallel(facts: &ModelFacts, config: &Config) -> bool {
    config.gpu_layers.len() > 1 && config.n_gpu_layers() > facts.n_layer && config.overrides.is_empty()
}

/// ggml-cuda's default `GGML_OP_OFFLOAD_MIN_BATCH`: smaller batches (token generation) stay on the CPU.
pub const OP_OFFLOAD_MIN_BATCH_TOKENS: u64 = 32;

/// Measured: the CPU backend keeps five n_embd-wide f32 rows per ubatch token alive beside the peak.
const RESIDUAL_ROWS: u64 = 5;

/// Cells of a sliding-window layer's cache (the same for every such layer).
fn kv_cells_swa(facts: &ModelFacts, config: &Config) -> u64 {
    match facts.sliding_window.as_ref().and_then(|sw| sw.layers.iter().position(|&s| s)) {
        Some(layer) => kv_cells(facts, config, layer),
        None => 0,
    }
}

/// The full footprint of `config`.
pub fn footprint(facts: &ModelFacts, config: &Config) -> Footprint {
    footprint_with(facts, config, pipeline_parallel(facts, config))
}

/// The footprint of `config` with pipeline parallelism on or off as given (the planner asks what a
/// device needs once the devices after it take the rest of the layers).
pub fn footprint_with(facts: &ModelFacts, config: &Config, pipeline: bool) -> Footprint {
    let owners = placement(facts.n_layer, &config.gpu_layers);
    let places = span_places(facts, config, &owners);
    let mut devices = vec![Bytes::default(); config.gpu_layers.len()];
    let mut host = Bytes::default();
    let host_plain = place_weights(facts, config, &owners, &places, &mut devices, &mut host);
    if config.use_mmap {
        // llama.cpp maps, per file, the range from the first to the last tensor the CPU buffer holds;
        // what lies inside it and is not read (repacked sources, GPU layers' data) can be dropped.
        host.weights = mapped_bytes(facts, &places, config.cpu_repack).max(host_plain);
        host.unread = host.weights - host_plain;
        if !config.use_mlock {
            host.evictable = host.unread;
        }
    } else {
        host.weights = host_plain;
    }
    let runs = Runs::of(facts, &owners, &places, devices.len());
    // ggml_backend_sched: an op whose weights are in host memory goes to the first GPU backend that
    // accepts it (CUDA: batches of >= 32 tokens); its weights are copied into that GPU's compute buffer
    // as inputs of the split. So GPU 0 also runs the CPU layers' matrix products (and the logits, when
    // the output layer stayed on the CPU) and holds a copy of the largest CPU-resident layer (with
    // experts in RAM: the largest layer's experts).
    let op_offload = config.op_offload
        && !devices.is_empty()
        && config.n_ubatch_tokens >= OP_OFFLOAD_MIN_BATCH_TOKENS
        && (runs.host_layers || runs.host_experts || runs.host_output);
    let p = parts(facts, config);
    let routed = facts.weights.has_routed_experts();
    for (d, bytes) in devices.iter_mut().enumerate() {
        let p = if routed && bytes.experts == 0 { Parts { layer_peak: p.peak_without_experts, ..p } } else { p };
        let mut has_layers = runs.device_layers[d];
        let mut has_output = owners[facts.n_layer as usize] == Some(d);
        let mut copies = 0;
        if op_offload && d == 0 {
            has_layers |= runs.host_layers || runs.host_experts;
            has_output |= runs.host_output;
            let output = if runs.host_output { facts.weights.output_bytes } else { 0 };
            copies = runs.largest_host_layer_bytes.max(output);
        }
        let has_first = owners.first() == Some(&Some(d));
        bytes.compute = device_compute_bytes(&p, has_first, has_layers, has_output, pipeline) + copies;
        // Only tensors an override sent here, of layers that run elsewhere: their products' outputs,
        // no graph inputs of its own (measured: one layer's ffn_down_exps on a loopback RPC device).
        let own_layers = owners[..facts.n_layer as usize].contains(&Some(d));
        if runs.device_layers[d] && !own_layers && !has_output && copies == 0 {
            bytes.compute = p.layer_peak;
        }
        // GPU 0 under op offload runs the experts kept in RAM too: its peak is the full one.
        if op_offload && d == 0 && runs.host_experts {
            bytes.compute = bytes
                .compute
                .max(device_compute_bytes(&parts(facts, config), has_first, has_layers, has_output, pipeline) + copies);
        }
    }
    host.compute = host_compute_bytes(facts, config, &p, &runs, op_offload, pipeline);
    Footprint { devices, host }
}

/// What runs where, beside the layers' own places.
struct Runs {
    /// Whole layers on the host.
    host_layers: bool,
    /// Experts (or other tensors) of device layers kept in host memory: the host runs their products.
    host_experts: bool,
    host_output: bool,
    /// Per device: whether it holds any layer's tensors.
    device_layers: Vec<bool>,
    /// The most bytes one layer keeps in host memory (what op offload copies to GPU 0 per split).
    largest_host_layer_bytes: u64,
}

impl Runs {
    fn of(facts: &ModelFacts, owners: &[Place], places: &[Place], n_devices: usize) -> Runs {
        let n_layer = facts.n_layer as usize;
        let mut device_layers: Vec<bool> = (0..n_devices).map(|d| owners[..n_layer].contains(&Some(d))).collect();
        let mut host_layer_bytes = vec![0u64; n_layer];
        let mut host_experts = false;
        for (s, place) in facts.weights.spans.iter().zip(places) {
            let Owner::Layer(l) = s.owner else { continue };
            match place {
                None => {
                    host_layer_bytes[l as usize] += s.bytes();
                    host_experts |= owners[l as usize].is_some();
                }
                Some(d) => {
                    if let Some(flag) = device_layers.get_mut(*d) {
                        *flag = true;
                    }
                }
            }
        }
        Runs {
            host_layers: owners[..n_layer].contains(&None),
            host_experts,
            host_output: owners[n_layer].is_none(),
            device_layers,
            largest_host_layer_bytes: host_layer_bytes.into_iter().max().unwrap_or(0),
        }
    }
}

/// The host's compute buffer: its own layers' (or, with experts in RAM and no op offload, the expert
/// products'), or only the graph's inputs; and llama.cpp's output buffer (the logits of the last token
/// of each sequence), which always lives in host memory.
fn host_compute_bytes(
    facts: &ModelFacts,
    config: &Config,
    p: &Parts,
    runs: &Runs,
    op_offload: bool,
    pipeline: bool,
) -> u64 {
    let output_buffer = facts.n_vocab * F32.block_bytes * config.n_seq.max(1);
    // The host runs its own layers; their large products and the logits move to GPU 0 under op offload.
    let host_runs_output = runs.host_output && !op_offload;
    let compute = if runs.host_layers || host_runs_output {
        compute_bytes(facts, config, runs.host_layers || runs.host_experts, host_runs_output)
    } else if runs.host_experts && !op_offload {
        // Only the experts of device layers: their inputs arrive from the devices (the masks go with
        // the graph's inputs), their intermediates are a layer's feed-forward peak.
        p.masks + EXPERT_ROWS * p.row + p.ffn
    } else {
        // Every layer on the devices: the host still looks up the input embeddings (token_embd stays
        // here) and holds the graph's inputs.
        host_inputs_bytes(p, pipeline)
    };
    compute + output_buffer
}

/// Rows of the residual stream the host keeps beside the expert products when it runs only those
/// (measured on moe-qwen-mini and moe-mixtral-mini at 1024 and 2048 tokens).
const EXPERT_ROWS: u64 = 2;

/// Put each tensor's bytes where it lives: devices' weights, and on the host the repacked copies;
/// returns the host bytes the CPU reads as they are in the file (the rest is repacked into CPU_REPACK).
/// Also fills each place's routed-expert bytes and the KV cache, which stays with the layer.
fn place_weights(
    facts: &ModelFacts,
    config: &Config,
    owners: &[Place],
    places: &[Place],
    devices: &mut [Bytes],
    host: &mut Bytes,
) -> u64 {
    let w = &facts.weights;
    let n_layer = facts.n_layer as usize;
    // Whether the CPU repacks a host-resident tensor: then it lives in CPU_REPACK, not the mapping.
    let repacked = |s: &Span| config.cpu_repack && s.repacked;
    let mut host_plain = 0;
    for (s, place) in w.spans.iter().zip(places) {
        let copy_bytes = match place {
            Some(d) => {
                if let Some(b) = devices.get_mut(*d) {
                    b.weights += s.bytes();
                }
                s.bytes()
            }
            None if repacked(s) => {
                host.repack += s.repack_bytes();
                s.repack_bytes()
            }
            None => {
                host_plain += s.bytes();
                s.bytes()
            }
        };
        if s.kind == TensorKind::RoutedExperts {
            match place.and_then(|d| devices.get_mut(d)) {
                Some(b) => b.experts += copy_bytes,
                None => host.experts += copy_bytes,
            }
        }
    }
    // A tied embedding is also the output matrix: on a device that is a copy of it; on the host the
    // output reuses the embedding's mapping, and the CPU repacks a copy for the products.
    if w.tied_embedding_bytes > 0 {
        match owners[n_layer] {
            Some(d) => devices[d].weights += w.tied_embedding_bytes,
            None => host.repack += if config.cpu_repack { w.tied_repack_bytes } else { 0 },
        }
    }
    for (layer, owner) in owners[..n_layer].iter().enumerate() {
        let kv = kv_layer_bytes(facts, config, layer);
        match owner {
            Some(d) => devices[*d].kv += kv,
            None => host.kv += kv,
        }
    }
    host_plain
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(gpu_layers: Vec<u32>) -> Config {
        Config {
            gpu_layers,
            n_ctx_tokens: 4096,
            cache_k: F16,
            cache_v: F16,
            n_ubatch_tokens: 512,
            flash_attn: true,
            n_seq: 1,
            swa_full: false,
            op_offload: true,
            cpu_repack: true,
            use_mmap: true,
            use_mlock: false,
            overrides: vec![],
        }
    }

    #[test]
    fn the_first_gpu_does_the_batch_work_of_cpu_layers() {
        let f = crate::model::synth::facts(&crate::model::shapes::LLAMA3_8B, "Q4_K_M");
        let largest_layer = *f.weights.layer_bytes.iter().max().unwrap();
        let p = parts(&f, &config(vec![]));
        // 10 of 33 layers on GPU 1, none on GPU 0: GPU 0 still gets the CPU layers' products and a copy
        // of the largest CPU layer; the output layer is on GPU 1, so no logits there.
        let partial = footprint(&f, &config(vec![0, 10]));
        let plain = device_compute_bytes(&p, false, true, false, false);
        assert_eq!(partial.devices[0].compute, plain + largest_layer);
        assert_eq!(partial.devices[0].weights, 0);
        // With the output layer on the CPU its weights are what GPU 0 copies (the largest tensor set).
        let none = footprint(&f, &config(vec![0, 0]));
        assert_eq!(
            none.devices[0].compute,
            device_compute_bytes(&p, false, true, true, false) + f.weights.output_bytes
        );
        // Everything on the GPUs: nothing left to copy, but pipeline parallelism keeps four copies of
        // each device's inputs; GPU 0 receives the embeddings.
        let full = footprint(&f, &config(vec![10, 23]));
        assert_eq!(full.devices[0].compute, PIPELINE_COPIES * (p.masks + 4 * p.row) + p.layer_peak);
        assert_eq!(full.devices[1].compute, PIPELINE_COPIES * (p.masks + p.row) + p.logits + p.row);
        assert_eq!(full.host.compute, host_inputs_bytes(&p, true) + f.n_vocab * 4);
        // One GPU with everything: no pipeline, one set of inputs.
        let one = footprint(&f, &config(vec![33]));
        assert_eq!(one.devices[0].compute, p.masks + 4 * p.row + p.logits);
        // Without op offload (or for token generation batches) GPU 0 only does its own layers, and the
        // host runs its layers' products and the logits itself.
        let off_config = Config { op_offload: false, ..config(vec![0, 10]) };
        let off = footprint(&f, &off_config);
        assert_eq!(off.devices[0].compute, 0);
        let output_buffer = f.n_vocab * 4;
        assert_eq!(off.host.compute, compute_bytes(&f, &off_config, true, false) + output_buffer);
        let output_on_cpu = Config { op_offload: false, ..config(vec![0, 0]) };
        assert_eq!(
            footprint(&f, &output_on_cpu).host.compute,
            compute_bytes(&f, &output_on_cpu, true, true) + output_buffer
        );
        let small_batch = footprint(&f, &Config { n_ubatch_tokens: 16, ..config(vec![0, 10]) });
        assert_eq!(small_batch.devices[0].compute, 0);
    }

    #[test]
    fn pipeline_parallelism_needs_several_devices_and_everything_offloaded() {
        let f = crate::model::synth::facts(&crate::model::shapes::LLAMA3_8B, "Q4_K_M");
        assert!(pipeline_parallel(&f, &config(vec![10, 23])));
        assert!(pipeline_parallel(&f, &config(vec![33, 0])), "a device with no layers still counts");
        assert!(!pipeline_parallel(&f, &config(vec![10, 22])), "a layer on the CPU");
        assert!(!pipeline_parallel(&f, &config(vec![33])), "one device");
    }

    #[test]
    fn placement_puts_the_output_layer_first_on_the_gpu() {
        // -ngl 1 offloads only the output layer (llama_model::load_tensors: i_gpu_start = n_layer + 1 - ngl).
        assert_eq!(placement(3, &[1]), vec![None, None, None, Some(0)]);
        assert_eq!(placement(3, &[0]), vec![None, None, None, None]);
        assert_eq!(placement(3, &[2, 2]), vec![Some(0), Some(0), Some(1), Some(1)]);
        assert_eq!(placement(3, &[1, 2]), vec![None, Some(0), Some(1), Some(1)]);
        // asking for more than exists is capped, as llama.cpp does
        assert_eq!(placement(2, &[9]), vec![Some(0), Some(0), Some(0)]);
    }

    #[test]
    fn repacked_weights_are_counted_twice_with_mmap_once_without() {
        let f = crate::model::synth::facts(&crate::model::shapes::LLAMA3_8B, "Q4_0");
        let file = f.weights.file_bytes();
        let cpu = |use_mmap, cpu_repack| Config { use_mmap, cpu_repack, ..config(vec![]) };
        let mapped = footprint(&f, &cpu(true, true)).host;
        assert!(mapped.repack > file / 2, "most Q4_0 matrices are repacked: {} of {file}", mapped.repack);
        assert!(mapped.weights + mapped.repack > file + file / 2, "the mapping and the copy");
        // what stays resident is the file's worth: the repacked tensors' mapped pages go unused
        assert_eq!(mapped.resident() - mapped.kv - mapped.compute, file);
        let read = footprint(&f, &cpu(false, true)).host;
        assert_eq!((read.weights + read.repack, read.evictable), (file, 0));
        let no_repack = footprint(&f, &cpu(true, false)).host;
        assert_eq!(no_repack.repack, 0);
        assert!(no_repack.weights >= file);
        let locked = footprint(&f, &Config { use_mlock: true, ..cpu(true, true) }).host;
        assert_eq!(locked.resident(), locked.total(), "--mlock pins the whole mapping");
    }
}
