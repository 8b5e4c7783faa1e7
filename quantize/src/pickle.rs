//! A bounded reader for the pickle that `torch.save` writes for a state dict.
//!
//! The reader runs the pickle opcodes on a stack machine like Python's unpickler, but it
//! builds only plain data: `None`, booleans, integers, floats, strings, tuples, lists and
//! dicts. The only globals it resolves are `collections.OrderedDict`, the tensor rebuild
//! functions in `torch._utils` and the `torch.*Storage` classes, and only their calls with
//! the arguments a state dict uses are evaluated. Every other global, and every opcode that
//! builds arbitrary objects (`INST`, `OBJ`, `NEWOBJ`, extension codes), is rejected, so no
//! code runs. Strings, the stack, the memo and nesting are bounded, and work is bounded by
//! the pickle's length.
//!
//! The memo stores values, not references to mutable objects: a list or dict changed after
//! it was memoized is not seen through the memo. `torch.save` only memoizes a container
//! before filling it when the container is never fetched from the memo again.

use std::collections::HashMap;
use std::rc::Rc;

/// Maximum string length accepted, in bytes. State dict keys are short dotted names.
pub const MAX_STRING_BYTES: usize = 64 * 1024;
/// Most values on the stack at once.
pub const MAX_STACK: usize = 1 << 20;
/// Most memo entries.
pub const MAX_MEMO: usize = 1 << 20;
/// Deepest nesting of containers. A state dict nests four levels deep.
pub const MAX_DEPTH: u32 = 32;
/// Most tensor dimensions.
pub const MAX_DIMS: usize = 8;

/// Element type of a torch storage class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageType {
    /// `torch.DoubleStorage`.
    F64,
    /// `torch.FloatStorage`.
    F32,
    /// `torch.HalfStorage`.
    F16,
    /// `torch.BFloat16Storage`.
    BF16,
    /// `torch.LongStorage`.
    I64,
    /// `torch.IntStorage`.
    I32,
    /// `torch.ShortStorage`.
    I16,
    /// `torch.CharStorage`.
    I8,
    /// `torch.ByteStorage`.
    U8,
    /// `torch.BoolStorage`.
    Bool,
}

impl StorageType {
    const ALL: [(&'static str, StorageType); 10] = [
        ("DoubleStorage", StorageType::F64),
        ("FloatStorage", StorageType::F32),
        ("HalfStorage", StorageType::F16),
        ("BFloat16Storage", StorageType::BF16),
        ("LongStorage", StorageType::I64),
        ("IntStorage", StorageType::I32),
        ("ShortStorage", StorageType::I16),
        ("CharStorage", StorageType::I8),
        ("ByteStorage", StorageType::U8),
        ("BoolStorage", StorageType::Bool),
    ];

    fn from_class(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(class, _)| *class == name)
            .map(|(_, ty)| *ty)
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            StorageType::F64 | StorageType::I64 => 8,
            StorageType::F32 | StorageType::I32 => 4,
            StorageType::F16 | StorageType::BF16 | StorageType::I16 => 2,
            StorageType::I8 | StorageType::U8 | StorageType::Bool => 1,
        }
    }
}

/// A storage named by a persistent id: `('storage', torch.FloatStorage, key, location, numel)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageRef {
    /// Element type.
    pub ty: StorageType,
    /// The storage's entry name under `data/` in the archive.
    pub key: String,
    /// Number of elements in the storage.
    pub numel: u64,
}

/// A contiguous tensor view of a storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorRef {
    /// The storage that contains the values.
    pub storage: Rc<StorageRef>,
    /// Offset of the first element, in elements.
    pub offset: u64,
    /// Shape in PyTorch order.
    pub shape: Vec<u64>,
}

impl TensorRef {
    /// Number of elements.
    pub fn numel(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// The reason a pickle was rejected. Offsets count bytes from the start of the pickle.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PickleError {
    /// The pickle ends before its STOP opcode.
    #[error("truncated pickle: {what} at byte {offset} runs past the end")]
    Truncated {
        /// The opcode or argument being read.
        what: &'static str,
        /// Offset of the opcode.
        offset: usize,
    },
    /// An opcode this reader does not accept.
    #[error("pickle opcode {opcode:#04x} ({name}) at byte {offset} is not accepted; {reason}")]
    UnsupportedOpcode {
        /// The opcode byte.
        opcode: u8,
        /// Its name in Python's pickletools, or "unknown".
        name: &'static str,
        /// Offset of the opcode.
        offset: usize,
        /// The reason for the rejection.
        reason: &'static str,
    },
    /// A global other than the few a state dict needs.
    #[error(
        "pickle global {module}.{name} at byte {offset} is not allowed; a state dict only \
         needs collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch storage \
         classes, so this file is not a plain state dict (and torch.load could run code from it)"
    )]
    ForbiddenGlobal {
        /// Module part.
        module: String,
        /// Name part.
        name: String,
        /// Offset of the opcode.
        offset: usize,
    },
    /// An operand has the wrong kind, or a call has arguments a state dict never uses.
    #[error("invalid pickle at byte {offset}: {message}")]
    Invalid {
        /// Offset of the opcode.
        offset: usize,
        /// Description of the problem.
        message: String,
    },
    /// A size, count or depth limit was exceeded.
    #[error(
        "pickle at byte {offset} exceeds the limit of {limit} {what}; a state dict never needs that many"
    )]
    Limit {
        /// The limited quantity.
        what: &'static str,
        /// The limit.
        limit: u64,
        /// Offset of the opcode that exceeded it.
        offset: usize,
    },
    /// The pickle does not produce a dict of tensors.
    #[error("the pickle is not a state dict: {message}")]
    NotStateDict {
        /// The kind of the top-level object, or the entry that is not a tensor.
        message: String,
    },
}

/// A global the reader resolves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    Storage(StorageType),
}

/// A container's items and nesting depth (1 for a container of scalars).
#[derive(Clone, Debug)]
struct Items<T> {
    items: Vec<T>,
    depth: u32,
}

/// A value on the stack or in the memo.
#[derive(Clone, Debug)]
enum Value {
    None,
    Bool,
    Int(i64),
    Float,
    Str(Rc<str>),
    Tuple(Rc<Items<Value>>),
    List(Rc<Items<Value>>),
    Dict(Rc<Items<(Value, Value)>>),
    Global(Global),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
}

impl Value {
    fn depth(&self) -> u32 {
        match self {
            Value::Tuple(items) | Value::List(items) => items.depth,
            Value::Dict(items) => items.depth,
            _ => 0,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool => "a bool",
            Value::Int(_) => "an int",
            Value::Float => "a float",
            Value::Str(_) => "a string",
            Value::Tuple(_) => "a tuple",
            Value::List(_) => "a list",
            Value::Dict(_) => "a dict",
            Value::Global(_) => "a class or function",
            Value::Storage(_) => "a storage",
            Value::Tensor(_) => "a tensor",
        }
    }
}

/// Runs `pickle` and returns the state dict it builds: tensor names and tensors in file order.
pub fn read_state_dict(pickle: &[u8]) -> Result<Vec<(String, TensorRef)>, PickleError> {
    let top = Machine::new(pickle).run()?;
    let Value::Dict(dict) = top else {
        return Err(PickleError::NotStateDict {
            message: format!("the top-level object is {}, expected a dict", top.kind()),
        });
    };
    let mut tensors = Vec::with_capacity(dict.items.len());
    let mut seen = std::collections::HashSet::new();
    for (key, value) in &dict.items {
        let Value::Str(name) = key else {
            return Err(PickleError::NotStateDict {
                message: format!("a key is {}, expected a tensor name", key.kind()),
            });
        };
        let Value::Tensor(tensor) = value else {
            return Err(PickleError::NotStateDict {
                message: format!("entry {name} is {}, expected a tensor", value.kind()),
            });
        };
        if !seen.insert(Rc::clone(name)) {
            return Err(PickleError::NotStateDict {
                message: format!("tensor {name} appears twice"),
            });
        }
        tensors.push((name.to_string(), TensorRef::clone(tensor)));
    }
    Ok(tensors)
}

/// The unpickler state.
struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    /// Offset of the opcode being run, for messages.
    op_start: usize,
    stack: Vec<Value>,
    /// Stack lengths at each MARK.
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    /// Elements that copy-on-write may still copy. Starts at a multiple of the input
    /// length, so total work stays proportional to it.
    copy_budget: u64,
}

impl<'a> Machine<'a> {
    fn new(input: &'a [u8]) -> Self {
        Machine {
            input,
            pos: 0,
            op_start: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            copy_budget: 16 * input.len() as u64 + 4096,
        }
    }

    fn run(mut self) -> Result<Value, PickleError> {
        loop {
            self.op_start = self.pos;
            let opcode = self.take(1, "opcode")?[0];
            if opcode == b'.' {
                return self.finish();
            }
            self.step(opcode)?;
        }
    }

    /// Handles STOP: the result is the only value left on the stack.
    fn finish(mut self) -> Result<Value, PickleError> {
        if !self.marks.is_empty() || self.stack.len() != 1 {
            return Err(self.invalid(format!(
                "STOP with {} values and {} marks on the stack, expected one value",
                self.stack.len(),
                self.marks.len()
            )));
        }
        Ok(self.stack.pop().unwrap_or(Value::None))
    }

    fn step(&mut self, opcode: u8) -> Result<(), PickleError> {
        match opcode {
            // PROTO: protocols 2 to 5 use the opcodes below.
            0x80 => {
                let version = self.take(1, "PROTO")?[0];
                if !(2..=5).contains(&version) {
                    return Err(self.invalid(format!(
                        "pickle protocol {version} is not supported; torch.save writes protocol 2"
                    )));
                }
            }
            // FRAME: a length prefix that protocol 4 adds; the frame's opcodes follow inline.
            0x95 => {
                self.take(8, "FRAME")?;
            }
            b'(' => {
                if self.marks.len() >= MAX_STACK {
                    return Err(self.limit("marks", MAX_STACK as u64));
                }
                self.marks.push(self.stack.len());
            }
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'N' => self.push(Value::None)?,
            0x88 | 0x89 => self.push(Value::Bool)?,
            b'J' => {
                let bytes = self.take_array::<4>("BININT")?;
                self.push(Value::Int(i64::from(i32::from_le_bytes(bytes))))?;
            }
            b'K' => {
                let byte = self.take(1, "BININT1")?[0];
                self.push(Value::Int(i64::from(byte)))?;
            }
            b'M' => {
                let bytes = self.take_array::<2>("BININT2")?;
                self.push(Value::Int(i64::from(u16::from_le_bytes(bytes))))?;
            }
            0x8a => self.long1()?,
            b'G' => {
                self.take(8, "BINFLOAT")?;
                self.push(Value::Float)?;
            }
            b'X' => {
                let len = u32::from_le_bytes(self.take_array::<4>("BINUNICODE")?);
                self.string(u64::from(len), "BINUNICODE")?;
            }
            0x8c => {
                let len = self.take(1, "SHORT_BINUNICODE")?[0];
                self.string(u64::from(len), "SHORT_BINUNICODE")?;
            }
            0x8d => {
                let len = u64::from_le_bytes(self.take_array::<8>("BINUNICODE8")?);
                self.string(len, "BINUNICODE8")?;
            }
            b'}' => self.push(Value::Dict(Rc::new(Items {
                items: Vec::new(),
                depth: 1,
            })))?,
            b']' => self.push(Value::List(Rc::new(Items {
                items: Vec::new(),
                depth: 1,
            })))?,
            b')' => self.push(Value::Tuple(Rc::new(Items {
                items: Vec::new(),
                depth: 1,
            })))?,
            b't' => {
                let items = self.pop_mark()?;
                self.push_tuple(items)?;
            }
            0x85..=0x87 => {
                let n = usize::from(opcode - 0x84);
                let items = self.pop_n(n)?;
                self.push_tuple(items)?;
            }
            b'a' => {
                let item = self.pop()?;
                self.extend_list(vec![item])?;
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.extend_list(items)?;
            }
            b's' => {
                let value = self.pop()?;
                let key = self.pop()?;
                self.extend_dict(vec![key, value])?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.extend_dict(items)?;
            }
            b'q' => {
                let index = self.take(1, "BINPUT")?[0];
                self.memo_put(u32::from(index))?;
            }
            b'r' => {
                let index = u32::from_le_bytes(self.take_array::<4>("LONG_BINPUT")?);
                self.memo_put(index)?;
            }
            0x94 => {
                let index = u32::try_from(self.memo.len()).unwrap_or(u32::MAX);
                self.memo_put(index)?;
            }
            b'h' => {
                let index = self.take(1, "BINGET")?[0];
                self.memo_get(u32::from(index))?;
            }
            b'j' => {
                let index = u32::from_le_bytes(self.take_array::<4>("LONG_BINGET")?);
                self.memo_get(index)?;
            }
            b'c' => {
                let module = self.line("GLOBAL module")?;
                let name = self.line("GLOBAL name")?;
                let global = self.resolve(module, name)?;
                self.push(Value::Global(global))?;
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Value::Str(module), Value::Str(name)) = (&module, &name) else {
                    return Err(self.invalid(format!(
                        "STACK_GLOBAL needs two strings, found {} and {}",
                        module.kind(),
                        name.kind()
                    )));
                };
                let global = self.resolve(module, name)?;
                self.push(Value::Global(global))?;
            }
            b'Q' => {
                let pid = self.pop()?;
                let storage = self.persistent_load(&pid)?;
                self.push(Value::Storage(Rc::new(storage)))?;
            }
            b'R' => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let result = self.call(&callable, &args)?;
                self.push(result)?;
            }
            b'b' => self.build()?,
            other => return Err(self.unsupported(other)),
        }
        Ok(())
    }

    // ---- input ----

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], PickleError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.input.len());
        let Some(end) = end else {
            return Err(PickleError::Truncated {
                what,
                offset: self.op_start,
            });
        };
        let bytes = &self.input[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn take_array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], PickleError> {
        let bytes = self.take(N, what)?;
        let mut array = [0u8; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    /// Reads a newline-terminated ASCII line of at most 256 bytes, for GLOBAL.
    fn line(&mut self, what: &'static str) -> Result<&'a str, PickleError> {
        const MAX_LINE: usize = 256;
        let rest = &self.input[self.pos..];
        let window = &rest[..rest.len().min(MAX_LINE + 1)];
        let Some(len) = window.iter().position(|&b| b == b'\n') else {
            if rest.len() <= MAX_LINE {
                return Err(PickleError::Truncated {
                    what,
                    offset: self.op_start,
                });
            }
            return Err(self.limit("bytes in a GLOBAL name", MAX_LINE as u64));
        };
        let line = &rest[..len];
        self.pos += len + 1;
        std::str::from_utf8(line)
            .ok()
            .filter(|text| text.is_ascii())
            .ok_or_else(|| self.invalid(format!("{what} is not ASCII")))
    }

    fn string(&mut self, len: u64, what: &'static str) -> Result<(), PickleError> {
        if len > MAX_STRING_BYTES as u64 {
            return Err(self.limit("bytes in a string", MAX_STRING_BYTES as u64));
        }
        let bytes = self.take(len as usize, what)?;
        let text = std::str::from_utf8(bytes)
            .map_err(|_| self.invalid(format!("{what} string is not valid UTF-8")))?;
        self.push(Value::Str(Rc::from(text)))
    }

    /// LONG1: a little-endian two's complement integer of up to 8 bytes.
    fn long1(&mut self) -> Result<(), PickleError> {
        let len = usize::from(self.take(1, "LONG1")?[0]);
        if len > 8 {
            return Err(self.invalid(format!(
                "LONG1 integer of {len} bytes does not fit in 64 bits"
            )));
        }
        let bytes = self.take(len, "LONG1")?;
        let mut buffer = [0u8; 8];
        buffer[..len].copy_from_slice(bytes);
        if bytes.last().is_some_and(|&b| b & 0x80 != 0) {
            buffer[len..].fill(0xff);
        }
        self.push(Value::Int(i64::from_le_bytes(buffer)))
    }

    // ---- stack ----

    fn push(&mut self, value: Value) -> Result<(), PickleError> {
        if self.stack.len() >= MAX_STACK {
            return Err(self.limit("values on the stack", MAX_STACK as u64));
        }
        if value.depth() > MAX_DEPTH {
            return Err(self.limit("levels of nesting", u64::from(MAX_DEPTH)));
        }
        self.stack.push(value);
        Ok(())
    }

    /// Pops one value that lies above the innermost mark.
    fn pop(&mut self) -> Result<Value, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.invalid("the stack is empty".to_owned()));
        }
        Ok(self.stack.pop().unwrap_or(Value::None))
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<Value>, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() < floor + n {
            return Err(self.invalid(format!("the opcode needs {n} values on the stack")));
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let Some(mark) = self.marks.pop() else {
            return Err(self.invalid("the opcode needs a MARK, but none is set".to_owned()));
        };
        Ok(self.stack.split_off(mark))
    }

    fn top_mut(&mut self) -> Result<&mut Value, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.invalid("the stack is empty".to_owned()));
        }
        let last = self.stack.len() - 1;
        Ok(&mut self.stack[last])
    }

    fn push_tuple(&mut self, items: Vec<Value>) -> Result<(), PickleError> {
        let depth = items.iter().map(Value::depth).max().unwrap_or(0) + 1;
        self.push(Value::Tuple(Rc::new(Items { items, depth })))
    }

    /// Charges copying `n` elements (copy-on-write of a memoized container) to the budget.
    fn charge_copy(&mut self, n: usize) -> Result<(), PickleError> {
        let n = n as u64;
        if n > self.copy_budget {
            return Err(self.limit(
                "copied container elements (16 per byte of pickle)",
                16 * self.input.len() as u64,
            ));
        }
        self.copy_budget -= n;
        Ok(())
    }

    fn extend_list(&mut self, new: Vec<Value>) -> Result<(), PickleError> {
        let depth = new.iter().map(Value::depth).max().unwrap_or(0) + 1;
        if depth > MAX_DEPTH {
            return Err(self.limit("levels of nesting", u64::from(MAX_DEPTH)));
        }
        let shared = match self.top_mut()? {
            Value::List(list) => Rc::strong_count(list) > 1,
            other => {
                let kind = other.kind();
                return Err(self.invalid(format!("APPEND to {kind}, expected a list")));
            }
        };
        if shared {
            let len = self.top_len();
            self.charge_copy(len)?;
        }
        if let Value::List(list) = self.top_mut()? {
            let list = Rc::make_mut(list);
            list.items.extend(new);
            list.depth = list.depth.max(depth);
        }
        Ok(())
    }

    /// Adds key, value pairs (flattened) to the dict on top of the stack.
    fn extend_dict(&mut self, flat: Vec<Value>) -> Result<(), PickleError> {
        if !flat.len().is_multiple_of(2) {
            return Err(self.invalid(format!(
                "SETITEMS with {} values, expected key, value pairs",
                flat.len()
            )));
        }
        let depth = flat.iter().map(Value::depth).max().unwrap_or(0) + 1;
        if depth > MAX_DEPTH {
            return Err(self.limit("levels of nesting", u64::from(MAX_DEPTH)));
        }
        let shared = match self.top_mut()? {
            Value::Dict(dict) => Rc::strong_count(dict) > 1,
            other => {
                let kind = other.kind();
                return Err(self.invalid(format!("SETITEM on {kind}, expected a dict")));
            }
        };
        if shared {
            let len = self.top_len();
            self.charge_copy(len)?;
        }
        if let Value::Dict(dict) = self.top_mut()? {
            let dict = Rc::make_mut(dict);
            let mut values = flat.into_iter();
            // Repeated keys are kept here and rejected by `read_state_dict`, which avoids
            // a quadratic search on every insertion.
            while let (Some(key), Some(value)) = (values.next(), values.next()) {
                dict.items.push((key, value));
            }
            dict.depth = dict.depth.max(depth);
        }
        Ok(())
    }

    fn top_len(&self) -> usize {
        match self.stack.last() {
            Some(Value::List(items) | Value::Tuple(items)) => items.items.len(),
            Some(Value::Dict(items)) => items.items.len(),
            _ => 0,
        }
    }

    // ---- memo ----

    fn memo_put(&mut self, index: u32) -> Result<(), PickleError> {
        let value = match self.stack.last() {
            Some(value) if self.stack.len() > self.marks.last().copied().unwrap_or(0) => {
                value.clone()
            }
            _ => return Err(self.invalid("memo store with an empty stack".to_owned())),
        };
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&index) {
            return Err(self.limit("memo entries", MAX_MEMO as u64));
        }
        self.memo.insert(index, value);
        Ok(())
    }

    fn memo_get(&mut self, index: u32) -> Result<(), PickleError> {
        let Some(value) = self.memo.get(&index).cloned() else {
            return Err(self.invalid(format!("memo entry {index} is read before it is stored")));
        };
        self.push(value)
    }

    // ---- globals and calls ----

    fn resolve(&self, module: &str, name: &str) -> Result<Global, PickleError> {
        let global = match (module, name) {
            ("collections", "OrderedDict") => Some(Global::OrderedDict),
            ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
            ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
            ("torch", class) => StorageType::from_class(class).map(Global::Storage),
            _ => None,
        };
        global.ok_or_else(|| PickleError::ForbiddenGlobal {
            module: module.to_owned(),
            name: name.to_owned(),
            offset: self.op_start,
        })
    }

    /// Resolves a persistent id `('storage', storage class, key, location, numel)`.
    fn persistent_load(&self, pid: &Value) -> Result<StorageRef, PickleError> {
        let bad = || {
            self.invalid(
                "persistent id is not ('storage', torch.<Type>Storage, key, location, numel)"
                    .to_owned(),
            )
        };
        let Value::Tuple(tuple) = pid else {
            return Err(bad());
        };
        let [tag, class, key, location, numel] = tuple.items.as_slice() else {
            return Err(bad());
        };
        let (
            Value::Str(tag),
            Value::Global(Global::Storage(ty)),
            Value::Str(key),
            Value::Str(_location),
            Value::Int(numel),
        ) = (tag, class, key, location, numel)
        else {
            return Err(bad());
        };
        if &**tag != "storage" {
            return Err(bad());
        }
        // The key names an archive entry, so it must not reach outside data/.
        let plain_key = !key.is_empty()
            && key.len() <= 64
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !plain_key {
            return Err(self.invalid(format!(
                "storage key {key:?} is not a plain name of letters, digits and underscores"
            )));
        }
        let numel = u64::try_from(*numel)
            .map_err(|_| self.invalid(format!("storage {key} has {numel} elements")))?;
        Ok(StorageRef {
            ty: *ty,
            key: key.to_string(),
            numel,
        })
    }

    fn call(&self, callable: &Value, args: &Value) -> Result<Value, PickleError> {
        let Value::Global(global) = callable else {
            return Err(self.invalid(format!(
                "REDUCE calls {}, expected a class or function",
                callable.kind()
            )));
        };
        let Value::Tuple(args) = args else {
            return Err(self.invalid(format!(
                "REDUCE arguments are {}, expected a tuple",
                args.kind()
            )));
        };
        let args = args.items.as_slice();
        match global {
            Global::OrderedDict if args.is_empty() => Ok(Value::Dict(Rc::new(Items {
                items: Vec::new(),
                depth: 1,
            }))),
            Global::OrderedDict => Err(self.invalid(
                "collections.OrderedDict is called with arguments; torch.save calls it with none"
                    .to_owned(),
            )),
            Global::RebuildTensorV2 => self.rebuild_tensor(args).map(|t| Value::Tensor(Rc::new(t))),
            Global::RebuildParameter => match args {
                [Value::Tensor(tensor), Value::Bool, hooks] if is_empty_dict(hooks) => {
                    Ok(Value::Tensor(Rc::clone(tensor)))
                }
                _ => Err(self.invalid(
                    "torch._utils._rebuild_parameter needs (tensor, requires_grad, {})".to_owned(),
                )),
            },
            Global::Storage(_) => Err(self.invalid(
                "a torch storage class is called directly; storages must come from persistent ids"
                    .to_owned(),
            )),
        }
    }

    /// Evaluates `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
    /// backward_hooks[, metadata])` for a contiguous tensor.
    fn rebuild_tensor(&self, args: &[Value]) -> Result<TensorRef, PickleError> {
        let usage = "torch._utils._rebuild_tensor_v2 needs (storage, offset, size, stride, \
                     requires_grad, {}[, metadata])";
        let (storage, offset, size, stride, requires_grad, hooks) = match args {
            [a, b, c, d, e, f] | [a, b, c, d, e, f, _] => (a, b, c, d, e, f),
            _ => return Err(self.invalid(usage.to_owned())),
        };
        let (Value::Storage(storage), Value::Int(offset), Value::Bool) =
            (storage, offset, requires_grad)
        else {
            return Err(self.invalid(usage.to_owned()));
        };
        if !is_empty_dict(hooks) {
            return Err(
                self.invalid("a tensor has backward hooks; a saved state dict has none".to_owned())
            );
        }
        let shape = self.int_tuple(size, "size")?;
        let strides = self.int_tuple(stride, "stride")?;
        if shape.len() != strides.len() {
            return Err(self.invalid(format!(
                "tensor size has {} dimensions but stride has {}",
                shape.len(),
                strides.len()
            )));
        }
        let offset = u64::try_from(*offset)
            .map_err(|_| self.invalid(format!("tensor storage offset is {offset}")))?;

        // Row-major strides; a dimension of size 1 may have any stride.
        let mut expected = 1u64;
        for (dim, (&len, &stride)) in shape.iter().zip(&strides).enumerate().rev() {
            if len != 1 && stride != expected {
                return Err(self.invalid(format!(
                    "tensor of size {shape:?} has stride {strides:?}, which is not contiguous \
                     (dimension {dim} needs stride {expected}); save tensor.contiguous() instead"
                )));
            }
            expected = expected.saturating_mul(len);
        }
        let numel = shape
            .iter()
            .try_fold(1u64, |acc, &len| acc.checked_mul(len))
            .ok_or_else(|| self.invalid(format!("tensor size {shape:?} overflows")))?;
        let end = offset.checked_add(numel);
        if end.is_none_or(|end| end > storage.numel) {
            return Err(self.invalid(format!(
                "tensor of {numel} elements at offset {offset} does not fit in storage {} of {} elements",
                storage.key, storage.numel
            )));
        }
        Ok(TensorRef {
            storage: Rc::clone(storage),
            offset,
            shape,
        })
    }

    fn int_tuple(&self, value: &Value, what: &str) -> Result<Vec<u64>, PickleError> {
        let Value::Tuple(tuple) = value else {
            return Err(self.invalid(format!(
                "tensor {what} is {}, expected a tuple",
                value.kind()
            )));
        };
        if tuple.items.len() > MAX_DIMS {
            return Err(self.limit("tensor dimensions", MAX_DIMS as u64));
        }
        tuple
            .items
            .iter()
            .map(|item| match item {
                Value::Int(n) if *n >= 0 => Ok(*n as u64),
                other => Err(self.invalid(format!(
                    "tensor {what} contains {}, expected non-negative ints",
                    other.kind()
                ))),
            })
            .collect()
    }

    /// BUILD sets an object's state. torch.save emits it for the state dict's `_metadata`
    /// attribute, which contains module versions only and is dropped.
    fn build(&mut self) -> Result<(), PickleError> {
        let state = self.pop()?;
        let target = self.top_mut()?;
        match (&*target, &state) {
            (Value::Dict(_), Value::Dict(_) | Value::None) => Ok(()),
            (target, state) => {
                let message = format!(
                    "BUILD sets the state of {} to {}; only a dict's attributes may be set",
                    target.kind(),
                    state.kind()
                );
                Err(self.invalid(message))
            }
        }
    }

    // ---- errors ----

    fn invalid(&self, message: String) -> PickleError {
        PickleError::Invalid {
            offset: self.op_start,
            message,
        }
    }

    fn limit(&self, what: &'static str, limit: u64) -> PickleError {
        PickleError::Limit {
            what,
            limit,
            offset: self.op_start,
        }
    }

    fn unsupported(&self, opcode: u8) -> PickleError {
        let (name, reason) = match opcode {
            b'i' | b'o' | 0x81 | 0x92 => ("INST/OBJ/NEWOBJ", "it creates arbitrary objects"),
            0x82..=0x84 => ("EXT", "extension codes name arbitrary classes"),
            b'P' => ("PERSID", "torch.save writes persistent ids with BINPERSID"),
            b'S' | b'T' | b'U' | b'V' | b'B' | b'C' | 0x8e | 0x96 => (
                "a text or bytes string",
                "torch.save writes names with BINUNICODE",
            ),
            b'I' | b'L' | b'F' | b'p' | b'g' | b'd' | b'l' | 0x8b => {
                ("a protocol 0 or 1 opcode", "torch.save writes protocol 2")
            }
            0x8f..=0x91 | 0x97 | 0x98 => {
                ("a set, bytearray or buffer opcode", "a state dict has none")
            }
            _ => ("unknown", "it is not a pickle opcode this reader knows"),
        };
        PickleError::UnsupportedOpcode {
            opcode,
            name,
            offset: self.op_start,
            reason,
        }
    }
}

fn is_empty_dict(value: &Value) -> bool {
    matches!(value, Value::Dict(dict) if dict.items.is_empty())
}
