//! libyaml's event parser (the `unsafe-libyaml` translation that `serde_yaml_ng` wraps), pulled
//! one event at a time. Pulling lazily is what keeps parsing linear: libyaml's scanner costs time
//! in proportion to the flow nesting depth for every token, so the composer stops at its depth limit
//! instead of letting the scanner run through the whole document first (as `serde_yaml_ng` does).
//!
//! This is the only `unsafe` code of the crate: a thin, owned wrapper in the manner of
//! `serde_yaml_ng::libyaml::parser`, that copies every event out before freeing it.

use std::ffi::CStr;
use std::marker::PhantomData;
use std::mem::MaybeUninit;

/// One parse event, with everything copied out of libyaml's buffers.
#[derive(Debug)]
pub(super) enum Event {
    StreamStart,
    StreamEnd,
    DocumentStart,
    DocumentEnd,
    Alias {
        anchor: Vec<u8>,
    },
    Scalar {
        anchor: Option<Vec<u8>>,
        tag: Option<Vec<u8>>,
        value: Vec<u8>,
        /// Plain (unquoted, not a block scalar): the only style whose type is resolved.
        plain: bool,
    },
    SequenceStart {
        anchor: Option<Vec<u8>>,
        tag: Option<Vec<u8>>,
    },
    SequenceEnd,
    MappingStart {
        anchor: Option<Vec<u8>>,
        tag: Option<Vec<u8>>,
    },
    MappingEnd,
}

/// A syntax error: libyaml's problem (and context), and the 0-based line of the problem.
#[derive(Debug)]
pub(super) struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// A libyaml parser over one borrowed text.
pub(super) struct Parser<'a> {
    /// Boxed: libyaml's state is large and is handled through a pointer for its whole life.
    sys: Box<MaybeUninit<unsafe_libyaml::yaml_parser_t>>,
    failed: bool,
    _input: PhantomData<&'a str>,
}

impl<'a> Parser<'a> {
    pub fn new(input: &'a str) -> Self {
        let mut sys = Box::new(MaybeUninit::<unsafe_libyaml::yaml_parser_t>::uninit());
        let parser = sys.as_mut_ptr();
        // SAFETY: `parser` points to memory we own for the parser's life; `initialize` fills it in
        // (it can only fail on allocation, which aborts in this Rust translation). The input is
        // borrowed for `'a`, which the parser cannot outlive.
        unsafe {
            if unsafe_libyaml::yaml_parser_initialize(parser).fail {
                panic!("libyaml could not allocate its parser");
            }
            unsafe_libyaml::yaml_parser_set_encoding(parser, unsafe_libyaml::YAML_UTF8_ENCODING);
            unsafe_libyaml::yaml_parser_set_input_string(
                parser,
                input.as_ptr(),
                input.len() as u64,
            );
        }
        Parser {
            sys,
            failed: false,
            _input: PhantomData,
        }
    }

    /// The next event and the 0-based line it starts on. After an error, every call returns it.
    pub fn next(&mut self) -> Result<(Event, usize), SyntaxError> {
        let parser = self.sys.as_mut_ptr();
        let mut event = MaybeUninit::<unsafe_libyaml::yaml_event_t>::uninit();
        // SAFETY: the parser was initialised in `new`; libyaml is not called again once it failed.
        // A successful `yaml_parser_parse` initialises `event`, which is copied out and deleted.
        unsafe {
            if self.failed || unsafe_libyaml::yaml_parser_parse(parser, event.as_mut_ptr()).fail {
                self.failed = true;
                return Err(syntax_error(&*parser));
            }
            let event = event.as_mut_ptr();
            let line = (*event).start_mark.line as usize;
            let copied = copy_event(&*event);
            unsafe_libyaml::yaml_event_delete(event);
            Ok((copied, line))
        }
    }
}

impl Drop for Parser<'_> {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, deleted once.
        unsafe { unsafe_libyaml::yaml_parser_delete(self.sys.as_mut_ptr()) }
    }
}

/// libyaml's message as `serde_yaml_ng` words it, without positions (the caller reports the line).
///
/// # Safety
/// `parser` must have failed: its problem and context are static C strings or null.
unsafe fn syntax_error(parser: &unsafe_libyaml::yaml_parser_t) -> SyntaxError {
    let text = |s: *const std::ffi::c_char| {
        // SAFETY: libyaml's messages are null or static, nul-terminated strings.
        (!s.is_null()).then(|| unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned())
    };
    let mut message = text(parser.problem).unwrap_or_else(|| "unknown libyaml error".into());
    if let Some(context) = text(parser.context) {
        message = format!("{message}, {context}");
    }
    SyntaxError {
        line: parser.problem_mark.line as usize,
        message,
    }
}

/// # Safety
/// `event` must be a successfully parsed event, not yet deleted.
unsafe fn copy_event(event: &unsafe_libyaml::yaml_event_t) -> Event {
    // SAFETY (all blocks below): the union member read is the one `type_` says is set; its
    // strings are nul-terminated or null, and a scalar's value has `length` bytes.
    match event.type_ {
        unsafe_libyaml::YAML_STREAM_START_EVENT => Event::StreamStart,
        unsafe_libyaml::YAML_STREAM_END_EVENT => Event::StreamEnd,
        unsafe_libyaml::YAML_DOCUMENT_START_EVENT => Event::DocumentStart,
        unsafe_libyaml::YAML_DOCUMENT_END_EVENT => Event::DocumentEnd,
        unsafe_libyaml::YAML_ALIAS_EVENT => Event::Alias {
            anchor: unsafe { c_bytes(event.data.alias.anchor) }.unwrap_or_default(),
        },
        unsafe_libyaml::YAML_SCALAR_EVENT => {
            let s = unsafe { event.data.scalar };
            Event::Scalar {
                anchor: unsafe { c_bytes(s.anchor) },
                tag: unsafe { c_bytes(s.tag) },
                value: if s.value.is_null() {
                    Vec::new()
                } else {
                    unsafe { std::slice::from_raw_parts(s.value, s.length as usize) }.to_vec()
                },
                plain: s.style == unsafe_libyaml::YAML_PLAIN_SCALAR_STYLE,
            }
        }
        unsafe_libyaml::YAML_SEQUENCE_START_EVENT => Event::SequenceStart {
            anchor: unsafe { c_bytes(event.data.sequence_start.anchor) },
            tag: unsafe { c_bytes(event.data.sequence_start.tag) },
        },
        unsafe_libyaml::YAML_SEQUENCE_END_EVENT => Event::SequenceEnd,
        unsafe_libyaml::YAML_MAPPING_START_EVENT => Event::MappingStart {
            anchor: unsafe { c_bytes(event.data.mapping_start.anchor) },
            tag: unsafe { c_bytes(event.data.mapping_start.tag) },
        },
        unsafe_libyaml::YAML_MAPPING_END_EVENT => Event::MappingEnd,
        _ => Event::StreamEnd, // YAML_NO_EVENT: libyaml has nothing more
    }
}

/// # Safety
/// `ptr` is null or a nul-terminated string.
unsafe fn c_bytes(ptr: *const u8) -> Option<Vec<u8>> {
    (!ptr.is_null()).then(|| unsafe { CStr::from_ptr(ptr.cast()) }.to_bytes().to_vec())
}
