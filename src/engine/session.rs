//! A loaded model and its context, driven through llama.cpp's C API (the sys crate): the safe crate's
//! model parameters cannot set `tensor_split`, which run-fit's multi-GPU plans need, and a model loaded
//! through the C API cannot be handed to the safe types. Every pointer here is owned by `Session` and
//! freed once in `Drop`.

use std::ffi::{CString, c_char, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use llama_cpp_sys_2 as sys;

use crate::run::protocol::{
    Generation, LoadSpec, Message, Sampling, SplitMode, Stage, Stats, StopReason, messages_to_drop,
};

/// A prompt the worker cannot serve: too long for the context, or (`template`) one llama.cpp's chat
/// template could not render.
#[derive(Debug)]
pub struct Refused {
    pub message: String,
    pub template: bool,
}

/// llama.cpp refused a step; the log lines the worker echoed say more.
#[derive(Debug, Clone, PartialEq)]
pub struct StepError {
    pub stage: Stage,
    pub message: String,
}

pub struct Session {
    model: *mut sys::llama_model,
    ctx: *mut sys::llama_context,
    vocab: *const sys::llama_vocab,
    /// The file's chat template; None: the file has none and `fallback_template` (a llama.cpp built-in
    /// name chosen by architecture) is used.
    template: Option<CString>,
    fallback_template: CString,
    /// The tokens whose keys and values are in the cache, in order (sequence 0).
    cached: Vec<sys::llama_token>,
    n_ctx_tokens: u32,
    n_batch_tokens: u32,
    /// Set by the abort callback's owner (the worker's stdin reader) to stop a decode or a reply.
    stop: &'static AtomicBool,
}

extern "C" fn on_progress(fraction: f32, user: *mut c_void) -> bool {
    // SAFETY: `user` is the `&mut dyn FnMut(f32)` passed by `Session::load`, alive for the whole load.
    let report = unsafe { &mut *(user as *mut &mut dyn FnMut(f32)) };
    report(fraction);
    true
}

/// Whether a stop may abort the decode in progress: only while a prompt is evaluated (it can take
/// seconds). Between generated tokens the reply loop checks the stop itself, so an aborted one-token
/// decode never throws the cache away.
static ABORTABLE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_abort(user: *mut c_void) -> bool {
    // SAFETY: `user` is the `&'static AtomicBool` given at context creation.
    let stop = unsafe { &*(user as *const AtomicBool) };
    ABORTABLE.load(Ordering::Relaxed) && stop.load(Ordering::Relaxed)
}

/// llama.cpp's tensor buffer-type overrides for `(pattern, device)` pairs, null-terminated, beside the
/// pattern strings they point into. "CPU" is host memory (llama.cpp then repacks what its CPU kernels
/// repack, as for `-ot …=CPU`); any other name is a device as ggml names it (CUDA0, RPC0, …).
fn buffer_overrides(
    pairs: &[(String, String)],
) -> Result<(Vec<CString>, Vec<sys::llama_model_tensor_buft_override>), StepError> {
    let fail = |message: String| StepError { stage: Stage::Load, message };
    // SAFETY: a constant lookup.
    let most = unsafe { sys::llama_max_tensor_buft_overrides() };
    if pairs.len() >= most {
        return Err(fail(format!("{} tensor overrides, but llama.cpp takes at most {}", pairs.len(), most - 1)));
    }
    let mut patterns = Vec::with_capacity(pairs.len());
    let mut overrides = Vec::with_capacity(pairs.len() + 1);
    for (pattern, device) in pairs {
        let c =
            CString::new(pattern.as_str()).map_err(|_| fail(format!("the pattern '{pattern}' holds a NUL byte")))?;
        let name =
            CString::new(device.as_str()).map_err(|_| fail(format!("the device '{device}' holds a NUL byte")))?;
        // SAFETY: registry lookups by NUL-terminated names; a null device is refused below.
        let buft = unsafe {
            if device == "CPU" {
                sys::ggml_backend_cpu_buffer_type()
            } else {
                let dev = sys::ggml_backend_dev_by_name(name.as_ptr());
                if dev.is_null() {
                    return Err(fail(format!("llama.cpp has no device named {device} for -ot {pattern}")));
                }
                sys::ggml_backend_dev_buffer_type(dev)
            }
        };
        // The CString's heap buffer does not move when the CString itself moves into the vector.
        overrides.push(sys::llama_model_tensor_buft_override { pattern: c.as_ptr(), buft });
        patterns.push(c);
    }
    overrides.push(sys::llama_model_tensor_buft_override { pattern: std::ptr::null(), buft: std::ptr::null_mut() });
    Ok((patterns, overrides))
}

impl Session {
    /// Load the weights, telling `on_stage` first so that a process that dies inside llama.cpp can be
    /// attributed to the step. The session has no context until `create_context`.
    pub fn load_model(
        spec: &LoadSpec,
        stop: &'static AtomicBool,
        on_stage: &mut dyn FnMut(Stage),
        mut on_progress_fraction: &mut dyn FnMut(f32),
    ) -> Result<Session, StepError> {
        let path = CString::new(spec.model.as_os_str().as_encoded_bytes())
            .map_err(|_| StepError { stage: Stage::Load, message: "the model path contains a NUL byte".into() })?;
        // llama.cpp reads max_devices floats from tensor_split when it is set.
        let mut split = spec.tensor_split.clone();
        // SAFETY: llama_max_devices is a constant lookup.
        split.resize(split.len().max(unsafe { sys::llama_max_devices() }), 0.0);
        // The patterns must outlive the load: llama.cpp reads them while it creates the tensors.
        let (_patterns, overrides) = buffer_overrides(&spec.tensor_overrides)?;
        on_stage(Stage::Load);
        // SAFETY: parameters start from llama.cpp's defaults; the tensor_split buffer and the progress
        // closure outlive the load call; the returned pointer is checked for null.
        let model = unsafe {
            let mut mp = sys::llama_model_default_params();
            mp.n_gpu_layers = spec.n_gpu_layers as i32;
            mp.split_mode = match spec.split_mode {
                SplitMode::None => sys::LLAMA_SPLIT_MODE_NONE,
                SplitMode::Layer => sys::LLAMA_SPLIT_MODE_LAYER,
                SplitMode::Row => sys::LLAMA_SPLIT_MODE_ROW,
            };
            mp.main_gpu = spec.main_gpu as i32;
            if !spec.tensor_split.is_empty() {
                mp.tensor_split = split.as_ptr();
            }
            mp.load_mode = match (spec.use_mmap, spec.use_mlock) {
                // llama.cpp's default: map the file unless a device cannot use mapped memory
                (true, false) => sys::LLAMA_LOAD_MODE_AUTO,
                (true, true) => sys::LLAMA_LOAD_MODE_MMAP_MLOCK,
                (false, true) => sys::LLAMA_LOAD_MODE_MLOCK,
                (false, false) => sys::LLAMA_LOAD_MODE_NONE,
            };
            if overrides.len() > 1 {
                mp.tensor_buft_overrides = overrides.as_ptr();
            }
            mp.progress_callback = Some(on_progress);
            mp.progress_callback_user_data = &mut on_progress_fraction as *mut &mut dyn FnMut(f32) as *mut c_void;
            sys::llama_model_load_from_file(path.as_ptr(), mp)
        };
        if model.is_null() {
            return Err(StepError { stage: Stage::Load, message: "llama.cpp could not load the model".into() });
        }
        // From here the session owns the model: Drop frees it.
        Ok(Session {
            model,
            ctx: std::ptr::null_mut(),
            // SAFETY: model is non-null; the vocab lives as long as the model.
            vocab: unsafe { sys::llama_model_get_vocab(model) },
            // SAFETY: the template string belongs to the model; copied at once.
            template: unsafe {
                let t = sys::llama_model_chat_template(model, std::ptr::null());
                (!t.is_null()).then(|| std::ffi::CStr::from_ptr(t).to_owned())
            },
            fallback_template: CString::new(spec.fallback_chat_template.as_str()).unwrap_or_default(),
            cached: Vec::new(),
            n_ctx_tokens: 0,
            n_batch_tokens: 0,
            stop,
        })
    }

    /// Create the context and run one warm-up decode. On failure the context is gone and the weights
    /// stay loaded: a smaller context can be tried without reading them again (llama.cpp frees what a
    /// failed context allocated).
    pub fn create_context(&mut self, spec: &LoadSpec, on_stage: &mut dyn FnMut(Stage)) -> Result<(), StepError> {
        self.free_context();
        on_stage(Stage::Context);
        // SAFETY: model is valid; `stop` is 'static, so the abort callback's data outlives the context.
        self.ctx = unsafe {
            let mut cp = sys::llama_context_default_params();
            cp.n_ctx = spec.n_ctx_tokens;
            cp.n_batch = spec.n_batch_tokens;
            cp.n_ubatch = spec.n_ubatch_tokens;
            cp.n_seq_max = 1;
            cp.n_threads = spec.n_threads as i32;
            cp.n_threads_batch = spec.n_threads_batch as i32;
            cp.type_k = spec.type_k as sys::ggml_type;
            cp.type_v = spec.type_v as sys::ggml_type;
            cp.flash_attn_type =
                if spec.flash_attn { sys::LLAMA_FLASH_ATTN_TYPE_ENABLED } else { sys::LLAMA_FLASH_ATTN_TYPE_DISABLED };
            cp.op_offload = spec.op_offload;
            cp.swa_full = spec.swa_full;
            cp.no_perf = false;
            cp.abort_callback = Some(on_abort);
            cp.abort_callback_data = self.stop as *const AtomicBool as *mut c_void;
            sys::llama_init_from_model(self.model, cp)
        };
        if self.ctx.is_null() {
            return Err(StepError {
                stage: Stage::Context,
                message: format!("llama.cpp could not create a context of {} tokens", spec.n_ctx_tokens),
            });
        }
        // SAFETY: ctx is non-null.
        unsafe {
            self.n_ctx_tokens = sys::llama_n_ctx(self.ctx);
            self.n_batch_tokens = sys::llama_n_batch(self.ctx);
        }

        // As llama.cpp's own tools do: one decode starts the thread pool and touches every buffer, so a
        // failure there happens now, not in the middle of the first reply.
        on_stage(Stage::Warmup);
        // SAFETY: vocab is valid while the model is.
        let mut warm = [unsafe { sys::llama_vocab_bos(self.vocab) }.max(0)];
        if let Err(e) = self.decode(&mut warm, Stage::Warmup) {
            self.free_context();
            return Err(e);
        }
        self.clear();
        Ok(())
    }

    fn free_context(&mut self) {
        if !self.ctx.is_null() {
            // SAFETY: ctx came from llama_init_from_model and is freed once.
            unsafe { sys::llama_free(self.ctx) };
            self.ctx = std::ptr::null_mut();
        }
        self.cached.clear();
    }

    pub fn n_ctx_tokens(&self) -> u32 {
        self.n_ctx_tokens
    }

    pub fn has_chat_template(&self) -> bool {
        self.template.is_some()
    }

    fn clear(&mut self) {
        // SAFETY: ctx is non-null once loaded; clears sequence data and metadata.
        unsafe { sys::llama_memory_clear(sys::llama_get_memory(self.ctx), true) };
        self.cached.clear();
    }

    /// Decode `tokens` at the next positions; on success they are in the cache. Ok(false): the user
    /// stopped it part-way.
    fn decode(&mut self, tokens: &mut [sys::llama_token], stage: Stage) -> Result<bool, StepError> {
        for chunk in tokens.chunks_mut(self.n_batch_tokens.max(1) as usize) {
            // SAFETY: the batch views `chunk`, which outlives the call; ctx is valid.
            let rc = unsafe {
                sys::llama_decode(self.ctx, sys::llama_batch_get_one(chunk.as_mut_ptr(), chunk.len() as i32))
            };
            match rc {
                0 => self.cached.extend_from_slice(chunk),
                2 => {
                    // Stopped part-way: llama.cpp removed the unfinished micro-batch from the cache and
                    // kept the ones before it; keep our token list in step with what it kept.
                    // SAFETY: ctx is valid.
                    let pos_max = unsafe { sys::llama_memory_seq_pos_max(sys::llama_get_memory(self.ctx), 0) };
                    let kept = usize::try_from(pos_max + 1).unwrap_or(0);
                    match kept.checked_sub(self.cached.len()) {
                        Some(n) if n <= chunk.len() => self.cached.extend_from_slice(&chunk[..n]),
                        _ => self.clear(),
                    }
                    return Ok(false);
                }
                1 => return Err(StepError { stage, message: "no room left in the KV cache".into() }),
                rc => return Err(StepError { stage, message: format!("llama_decode failed with {rc}") }),
            }
        }
        Ok(true)
    }

    /// The conversation as the model's chat template renders it, ready for the assistant's reply.
    pub fn render(&self, messages: &[Message]) -> Result<String, String> {
        let owned: Vec<(CString, CString)> = messages
            .iter()
            .map(|m| Ok((CString::new(m.role.as_str())?, CString::new(m.content.as_str())?)))
            .collect::<Result<_, std::ffi::NulError>>()
            .map_err(|_| "a message contains a NUL byte".to_string())?;
        let chat: Vec<sys::llama_chat_message> =
            owned.iter().map(|(r, c)| sys::llama_chat_message { role: r.as_ptr(), content: c.as_ptr() }).collect();
        let tmpl = self.template.as_ref().unwrap_or(&self.fallback_template).as_ptr();
        let mut buf: Vec<u8> =
            vec![0; 1024 + 2 * messages.iter().map(|m| m.content.len() + m.role.len()).sum::<usize>()];
        for _ in 0..2 {
            // SAFETY: every pointer refers to live CStrings or `buf`, whose length is passed.
            let n = unsafe {
                sys::llama_chat_apply_template(
                    tmpl,
                    chat.as_ptr(),
                    chat.len(),
                    true,
                    buf.as_mut_ptr() as *mut c_char,
                    buf.len().min(i32::MAX as usize) as i32,
                )
            };
            if n < 0 {
                return Err("llama.cpp does not know this model's chat template".into());
            }
            if n as usize <= buf.len() {
                buf.truncate(n as usize);
                return String::from_utf8(buf).map_err(|_| "the chat template produced invalid UTF-8".into());
            }
            buf.resize(n as usize, 0);
        }
        Err("the chat template output kept growing".into())
    }

    /// Plain text as tokens, with the model's BOS in front and no special-token parsing.
    pub fn tokenize(&self, text: &str) -> Vec<sys::llama_token> {
        self.tokens(text, true, false)
    }

    /// `text` as tokens. `parse_special`: text such as `<|im_end|>` becomes the control token (for the
    /// template's own text only, never for what a user wrote).
    fn tokens(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<sys::llama_token> {
        let mut tokens = vec![0; text.len() + 8];
        for _ in 0..2 {
            // SAFETY: `tokens` has the capacity passed; text is passed with its length.
            let n = unsafe {
                sys::llama_tokenize(
                    self.vocab,
                    text.as_ptr() as *const c_char,
                    text.len().min(i32::MAX as usize) as i32,
                    tokens.as_mut_ptr(),
                    tokens.len().min(i32::MAX as usize) as i32,
                    add_special,
                    parse_special,
                )
            };
            if n >= 0 {
                tokens.truncate(n as usize);
                // A template that writes the BOS text itself plus add_special gives two BOS tokens.
                // SAFETY: vocab is valid.
                let bos = unsafe { sys::llama_vocab_bos(self.vocab) };
                if tokens.len() >= 2 && tokens[0] == bos && tokens[1] == bos {
                    tokens.remove(0);
                }
                return tokens;
            }
            tokens.resize((-n) as usize, 0);
        }
        Vec::new()
    }

    /// The conversation as the model sees it, tokenized so that only the template's own text can
    /// make control tokens: each message's content is rendered as a placeholder, and the content is
    /// tokenized apart, without special-token parsing (as if a user typed `<|im_end|>`, it stays text).
    fn prompt_tokens(&self, messages: &[Message]) -> Result<Vec<sys::llama_token>, String> {
        const OPEN: char = '\u{E000}';
        const CLOSE: char = '\u{E001}';
        let marked: Vec<Message> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| Message { role: m.role.clone(), content: format!("{OPEN}{i}{CLOSE}") })
            .collect();
        let rendered = self.render(&marked)?;
        let mut tokens = Vec::new();
        let mut rest = rendered.as_str();
        let mut seen = 0;
        while let Some(start) = rest.find(OPEN) {
            let template_part = &rest[..start];
            if !template_part.is_empty() || tokens.is_empty() {
                tokens.extend(self.tokens(template_part, tokens.is_empty(), true));
            }
            let after = &rest[start + OPEN.len_utf8()..];
            let Some(end) = after.find(CLOSE) else { break };
            let Some(message) = after[..end].parse::<usize>().ok().and_then(|i| messages.get(i)) else { break };
            let content: String = message.content.chars().filter(|c| *c != OPEN && *c != CLOSE).collect();
            tokens.extend(self.tokens(&content, false, false));
            seen += 1;
            rest = &after[end + CLOSE.len_utf8()..];
        }
        if seen != messages.len() {
            return Err("llama.cpp's chat template for this model dropped or changed a message".into());
        }
        tokens.extend(self.tokens(rest, false, true));
        Ok(tokens)
    }

    /// Render and tokenize `messages`, dropping the oldest turns after the system prompt until the
    /// prompt leaves room for `reply_room_tokens`. Returns the tokens and how many messages were dropped.
    pub fn fit_prompt(
        &self,
        messages: &[Message],
        reply_room_tokens: u32,
    ) -> Result<(Vec<sys::llama_token>, usize), Refused> {
        let budget = self.n_ctx_tokens.saturating_sub(reply_room_tokens).max(1) as usize;
        let mut rendered = Ok(Vec::new());
        let mut longest = 0;
        let dropped = messages_to_drop(messages, |window| {
            rendered = self.prompt_tokens(window);
            match &rendered {
                Ok(tokens) => {
                    longest = tokens.len();
                    tokens.len() <= budget
                }
                Err(_) => true, // stop: the error is reported below
            }
        });
        let tokens = rendered.map_err(|message| Refused { message, template: true })?;
        match dropped {
            Some(d) => Ok((tokens, d)),
            None => Err(Refused {
                message: format!(
                    "the message is {longest} tokens but the context holds {budget} with room for the reply; shorten it or raise -c"
                ),
                template: false,
            }),
        }
    }

    /// Answer: evaluate `prompt` (reusing the cached prefix), then sample until end of generation,
    /// `max_tokens`, a full context or a stop. `on_text` gets each complete UTF-8 piece.
    pub fn reply(
        &mut self,
        prompt: &[sys::llama_token],
        generation: &Generation,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<(StopReason, Stats), StepError> {
        if prompt.is_empty() {
            return Err(StepError { stage: Stage::Decode, message: "the prompt rendered to no tokens".into() });
        }
        // Keep the longest cached prefix, but always decode at least the last prompt token: its logits
        // start the reply.
        let common = self.cached.iter().zip(prompt).take_while(|(a, b)| a == b).count().min(prompt.len() - 1);
        // SAFETY: ctx is valid; removing positions [common, end) of sequence 0.
        let trimmed = unsafe { sys::llama_memory_seq_rm(sys::llama_get_memory(self.ctx), 0, common as i32, -1) };
        if trimmed {
            self.cached.truncate(common);
        } else {
            // Sliding-window and recurrent caches cannot drop a suffix: start over.
            self.clear();
        }
        let mut new_tokens = prompt[self.cached.len()..].to_vec();
        let cached_before = self.cached.len();
        let started = Instant::now();
        ABORTABLE.store(true, Ordering::Relaxed);
        let evaluated = self.decode(&mut new_tokens, Stage::Decode);
        ABORTABLE.store(false, Ordering::Relaxed);
        if !evaluated? {
            // Stopped mid-prompt: count what was evaluated (and kept), not what was asked.
            let done = self.cached.len().saturating_sub(cached_before) as u64;
            let stats = self.stats(done, started.elapsed().as_secs_f64() * 1e3, 0, 0.0);
            return Ok((StopReason::Stopped, stats));
        }
        // SAFETY: ctx is valid; waits for the backend so the prompt time is complete.
        unsafe { sys::llama_synchronize(self.ctx) };
        let prompt_ms = started.elapsed().as_secs_f64() * 1e3;

        let sampler = Sampler::new(&generation.sampling);
        let mut pending: Vec<u8> = Vec::new();
        let mut generated = 0u64;
        let gen_started = Instant::now();
        let stop = loop {
            if self.stop.load(Ordering::Relaxed) {
                break StopReason::Stopped;
            }
            if generation.max_tokens.is_some_and(|m| generated >= m as u64) {
                break StopReason::TokenLimit;
            }
            if self.cached.len() >= self.n_ctx_tokens as usize {
                break StopReason::ContextFull;
            }
            // SAFETY: sampler and ctx are valid; -1 = the last token's logits.
            let token = unsafe { sys::llama_sampler_sample(sampler.0, self.ctx, -1) };
            // SAFETY: vocab is valid.
            if !generation.ignore_eos && unsafe { sys::llama_vocab_is_eog(self.vocab, token) } {
                break StopReason::EndOfGeneration;
            }
            pending.extend_from_slice(&self.piece(token));
            let valid = match std::str::from_utf8(&pending) {
                Ok(s) => s.len(),
                Err(e) if e.error_len().is_none() => e.valid_up_to(), // an incomplete character: wait
                Err(_) => pending.len(),                              // invalid bytes: pass them lossily
            };
            if valid > 0 {
                on_text(&String::from_utf8_lossy(&pending[..valid]));
                pending.drain(..valid);
            }
            generated += 1;
            if !self.decode(&mut [token], Stage::Decode)? {
                break StopReason::Stopped;
            }
        };
        if !pending.is_empty() {
            on_text(&String::from_utf8_lossy(&pending));
        }
        let gen_ms = gen_started.elapsed().as_secs_f64() * 1e3;
        Ok((stop, self.stats(new_tokens.len() as u64, prompt_ms, generated, gen_ms)))
    }

    /// llama-bench's measurement: pp — an empty cache, `prompt_tokens` of ordinary text in one go; tg —
    /// an empty cache again, one token, then `gen_tokens` generated greedily whatever the model says.
    /// The two tests are separate, as llama-bench's pp512 and tg128 are.
    pub fn bench(&mut self, prompt_tokens: u32, gen_tokens: u32) -> Result<(StopReason, Stats), StepError> {
        let text =
            "The quick brown fox jumps over the lazy dog near the river bank. ".repeat(prompt_tokens as usize / 8 + 1);
        let mut prompt = self.tokenize(&text);
        prompt.truncate(prompt_tokens.max(1) as usize);
        let greedy = |max_tokens| Generation {
            max_tokens: Some(max_tokens),
            ignore_eos: true,
            sampling: Sampling { temp: 0.0, ..Sampling::default() },
        };
        self.clear();
        let (_, pp) = self.reply(&prompt, &greedy(0), &mut |_| {})?;
        self.clear();
        let (stop, tg) = self.reply(&prompt[..1], &greedy(gen_tokens), &mut |_| {})?;
        Ok((stop, Stats { prompt_tokens: pp.prompt_tokens, prompt_ms: pp.prompt_ms, ..tg }))
    }

    fn stats(&self, prompt_tokens: u64, prompt_ms: f64, generated_tokens: u64, generation_ms: f64) -> Stats {
        Stats {
            prompt_tokens,
            prompt_ms,
            generated_tokens,
            generation_ms,
            ctx_used_tokens: self.cached.len() as u64,
            ctx_size_tokens: self.n_ctx_tokens as u64,
        }
    }

    /// The text of one token; special tokens (end of turn…) render as nothing.
    fn piece(&self, token: sys::llama_token) -> Vec<u8> {
        let mut buf = vec![0u8; 64];
        for _ in 0..2 {
            // SAFETY: buf has the length passed.
            let n = unsafe {
                sys::llama_token_to_piece(
                    self.vocab,
                    token,
                    buf.as_mut_ptr() as *mut c_char,
                    buf.len() as i32,
                    0,
                    false,
                )
            };
            if n >= 0 {
                buf.truncate(n as usize);
                return buf;
            }
            buf.resize((-n) as usize, 0);
        }
        Vec::new()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.free_context();
        // SAFETY: the model was returned by llama.cpp and is freed once, after its context.
        unsafe { sys::llama_model_free(self.model) };
    }
}

/// llama.cpp's sampler chain in its default order (top-k, top-p, min-p, temperature, then a draw).
struct Sampler(*mut sys::llama_sampler);

impl Sampler {
    fn new(s: &Sampling) -> Sampler {
        // SAFETY: each llama_sampler_init_* result is owned by the chain, which Drop frees.
        unsafe {
            let chain = sys::llama_sampler_chain_init(sys::llama_sampler_chain_default_params());
            if s.temp <= 0.0 {
                sys::llama_sampler_chain_add(chain, sys::llama_sampler_init_greedy());
            } else {
                if s.top_k > 0 {
                    sys::llama_sampler_chain_add(chain, sys::llama_sampler_init_top_k(s.top_k));
                }
                sys::llama_sampler_chain_add(chain, sys::llama_sampler_init_top_p(s.top_p, 1));
                sys::llama_sampler_chain_add(chain, sys::llama_sampler_init_min_p(s.min_p, 1));
                sys::llama_sampler_chain_add(chain, sys::llama_sampler_init_temp(s.temp));
                // u32::MAX is LLAMA_DEFAULT_SEED: a random seed.
                sys::llama_sampler_chain_add(chain, sys::llama_sampler_init_dist(s.seed.unwrap_or(u32::MAX)));
            }
            Sampler(chain)
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        // SAFETY: the chain was created in `new` and frees the samplers added to it.
        unsafe { sys::llama_sampler_free(self.0) };
    }
}
