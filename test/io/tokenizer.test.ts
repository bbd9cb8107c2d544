// Tokenizers against real checkpoint files (../shared/models) and fixtures made by independent implementations
// (test/fixtures/tokenizers/generate.py: sentencepiece, GPT-2's encoder.py algorithm, Python jinja2).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadTokenizer, type ChatMessage, type Tokenizer } from '../../src/io/tokenizer.js';
import { Llama2cTokenizer, loadLlama2cTokenizer, parseLlama2cTokenizer } from '../../src/io/llama2c-tokenizer.js';
import { Rng } from '../helpers/random.js';

const MODELS = resolve('../shared/models');
const FIXTURES = resolve('test/fixtures/tokenizers');
const TINY = join(FIXTURES, 'tiny-llama3');

interface Case {
  text: string;
  ids: number[];
}
interface ChatCase extends Case {
  template_name: string;
  add_generation_prompt: boolean;
  messages: ChatMessage[];
}
const expected = JSON.parse(readFileSync(join(FIXTURES, 'expected.json'), 'utf8')) as {
  llama2c32k: Case[];
  gpt2: Case[];
  chat: ChatCase[];
};

/** A temporary folder with the given files (string contents, or a path to link to); removed after `fn`. */
function withDir(files: Record<string, string | { link: string }>, fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'peftjs-tok-'));
  try {
    for (const [name, content] of Object.entries(files)) {
      if (typeof content === 'string') writeFileSync(join(dir, name), content);
      else symlinkSync(content.link, join(dir, name));
    }
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const tinyFile = (name: string): string => readFileSync(join(TINY, name), 'utf8');
const tinyConfig = (): Record<string, unknown> => JSON.parse(tinyFile('tokenizer_config.json'));

// ---------------------------------------------------------------- llama2.c tokenizer.bin

test('llama2.c tok512: decode(golden greedy ids) is the golden text, encode reproduces the ids', () => {
  const golden = JSON.parse(readFileSync(join(MODELS, 'stories260K/golden_greedy_64.json'), 'utf8')) as {
    generated_ids: number[];
    decoded: string;
  };
  const tok = loadTokenizer(join(MODELS, 'stories260K'));
  assert.equal(tok.vocabSize, 512);
  assert.equal(tok.bosId, 1);
  assert.deepEqual(tok.eosIds, [2]);
  // The golden text is the plain concatenation of the generated pieces: it starts with " Once" (the piece's space).
  assert.equal(tok.decode(golden.generated_ids), golden.decoded);
  // After BOS, llama2.c drops the first piece's leading space.
  assert.equal(tok.decode([1, ...golden.generated_ids], { skipSpecialTokens: true }), golden.decoded.slice(1));
  // That space is the dummy prefix encode adds, so the text without it encodes back to exactly the ids.
  assert.equal(golden.decoded[0], ' ');
  assert.deepEqual(tok.encode(golden.decoded.slice(1)), [1, ...golden.generated_ids]);
  assert.deepEqual(tok.encode(golden.decoded.slice(1), { addSpecialTokens: false }), golden.generated_ids);
});

test('llama2.c tok512 from the HF-layout folder checks config.json vocab_size', () => {
  const tok = loadTokenizer(join(MODELS, 'stories260K-hf'));
  assert.equal(tok.vocabSize, 512);
  assert.deepEqual(tok.encode('Lily'), loadTokenizer(join(MODELS, 'stories260K')).encode('Lily'));
  assert.throws(() => loadLlama2cTokenizer(join(MODELS, 'stories260K/tok512.bin'), 32000), /512 tokens but the model's vocab_size is 32000/);
});

test('llama2.c 32k tokenizer.bin matches sentencepiece ids and round-trips', () => {
  const tok = loadTokenizer(join(MODELS, 'llama2c-tokenizer-32k'));
  assert.equal(tok.vocabSize, 32000);
  for (const { text, ids } of expected.llama2c32k) {
    assert.deepEqual(tok.encode(text), ids, `encode ${JSON.stringify(text)}`);
    assert.equal(tok.decode(ids, { skipSpecialTokens: true }), text, `decode ${JSON.stringify(text)}`);
  }
  // Byte fallback: the emoji has no piece, so its four UTF-8 bytes come out as <0xXX> tokens (byte + 3).
  const bytes = [...new TextEncoder().encode('🤗')].map((b) => b + 3);
  assert.deepEqual(tok.encode('🤗', { addSpecialTokens: false }).slice(-4), bytes);
  assert.equal(tok.idToToken(bytes[0]), '<0xF0>');
  assert.equal(tok.tokenToId(' world'), 3186);
  assert.equal(tok.idToToken(3186), ' world');
  // A lone byte of a multi-byte character decodes as U+FFFD, not as a Latin-1 character.
  assert.equal(tok.decode([bytes[0]]), '\uFFFD');
  assert.throws(() => tok.decode([32000]), /token id 32000 is outside the vocabulary \[0, 32000\)/);
});

/**
 * llama2.c run.c `encode` transcribed line by line (its quadratic rescan merge loop), over its own parse of the
 * file: the oracle for the heap-based merge in Llama2cTokenizer.
 */
function llama2cEncodeOracle(file: string): (text: string) => number[] {
  const buf = readFileSync(file);
  const vocab: string[] = [];
  const scores: number[] = [];
  for (let off = 4; off < buf.length; ) {
    const len = buf.readInt32LE(off + 4);
    scores.push(buf.readFloatLE(off));
    vocab.push(buf.toString('latin1', off + 8, off + 8 + len));
    off += 8 + len;
  }
  const lookup = new Map<string, number>();
  vocab.forEach((v, i) => lookup.has(v) || lookup.set(v, i));
  return (text) => {
    const bytes = Buffer.from(text, 'utf8');
    const tokens = [1];
    if (bytes.length > 0) tokens.push(lookup.get(' ')!);
    let str = '';
    for (let c = 0; c < bytes.length; c++) {
      if ((bytes[c] & 0xc0) !== 0x80) str = '';
      str += String.fromCharCode(bytes[c]);
      if (c + 1 < bytes.length && (bytes[c + 1] & 0xc0) === 0x80 && str.length < 4) continue;
      const id = lookup.get(str);
      if (id !== undefined) tokens.push(id);
      else for (let i = 0; i < str.length; i++) tokens.push(str.charCodeAt(i) + 3);
      str = '';
    }
    for (;;) {
      let best = Math.fround(-1e10);
      let bestId = -1;
      let bestIdx = -1;
      for (let i = 0; i < tokens.length - 1; i++) {
        const id = lookup.get(vocab[tokens[i]] + vocab[tokens[i + 1]]);
        if (id !== undefined && scores[id] > best) [best, bestId, bestIdx] = [scores[id], id, i];
      }
      if (bestIdx === -1) break;
      tokens.splice(bestIdx, 2, bestId);
    }
    return tokens;
  };
}

test('llama2.c encode equals a transcription of run.c encode on random text', () => {
  const rng = new Rng(1234);
  const alphabet = [...'aaaeeeiioouu tttnnssrrhhll   ..,,!!??\'"\n\t0123456789-=_', 'é', 'ü', 'ñ', '—', '中', '文', '🤗', '🚀'];
  for (const dir of ['stories260K', 'llama2c-tokenizer-32k']) {
    const tok = loadTokenizer(join(MODELS, dir));
    const oracle = llama2cEncodeOracle(join(MODELS, dir, dir === 'stories260K' ? 'tok512.bin' : 'tokenizer.bin'));
    for (let k = 0; k < 300; k++) {
      let s = '';
      for (let n = rng.int(0, 120); n > 0; n--) s += rng.pick(alphabet);
      assert.deepEqual(tok.encode(s), oracle(s), `${dir}: ${JSON.stringify(s)}`);
    }
  }
});

test('llama2.c merges only pieces scoring above its -1e10 floor, leftmost first on ties', () => {
  const fixed = ['<unk>', '\n<s>\n', '\n</s>\n', ...Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)];
  const pieces = [...fixed, ' ', 'a', 'b', 'aa', ' b', 'bb'];
  const scores = [...fixed.map(() => 0), 0, 0, 0, -1, -2e10, -1];
  const tok = new Llama2cTokenizer(pieces.map((p) => new TextEncoder().encode(p)), Float32Array.from(scores), 5);
  const [space, a, b, aa, , bb] = pieces.slice(fixed.length).map((p) => tok.tokenToId(p)!);
  // ' b' (-2e10) is below the floor, so " b..." keeps the space separate; 'aa' and 'bb' tie at -1: leftmost wins.
  assert.deepEqual(tok.encode('bbb', { addSpecialTokens: false }), [space, bb, b]);
  assert.deepEqual(tok.encode('aaabbb', { addSpecialTokens: false }), [space, aa, a, bb, b]);
  assert.deepEqual(tok.encode('bab'), [1, space, b, a, b]);
});

test('truncated or malformed llama2.c tokenizer files are rejected with the path', () => {
  const path = join(MODELS, 'stories260K/tok512.bin');
  const buf = readFileSync(path);
  assert.throws(() => parseLlama2cTokenizer(buf.subarray(0, buf.length - 3), 'cut.bin'), /cut\.bin: truncated: token 511 needs/);
  assert.throws(() => parseLlama2cTokenizer(buf.subarray(0, 2), 'tiny.bin'), /tiny\.bin: file is 2 bytes/);
  const bad = Buffer.from(buf);
  bad.writeInt32LE(1000, 8); // token 0's length
  assert.throws(() => parseLlama2cTokenizer(bad, 'bad.bin'), /bad\.bin: token 0 has length 1000/);
  withDir({}, (dir) => {
    writeFileSync(join(dir, 'tokenizer.bin'), buf.subarray(0, buf.length - 5));
    assert.throws(() => loadTokenizer(dir), (e: Error) => e.message.includes(join(dir, 'tokenizer.bin')) && /truncated/.test(e.message));
  });
  // Cut exactly at a record boundary: only the model's vocab_size can tell.
  withDir({ 'config.json': JSON.stringify({ vocab_size: 512 }) }, (dir) => {
    let off = 4;
    for (let i = 0; i < 500; i++) off += 8 + buf.readInt32LE(off + 4);
    writeFileSync(join(dir, 'tok512.bin'), buf.subarray(0, off));
    assert.throws(() => loadTokenizer(dir), /tok512\.bin: holds 500 tokens but the model's vocab_size is 512/);
  });
});

// ---------------------------------------------------------------- tokenizer.json (GPT-2)

test('GPT-2 tokenizer.json: ids match an independent BPE over vocab.json + merges.txt', () => {
  const tok = loadTokenizer(join(MODELS, 'tiny-gpt2-random'));
  assert.equal(tok.vocabSize, 50257);
  assert.deepEqual(tok.encode('Hello world'), [15496, 995]);
  assert.deepEqual(tok.encode(' the'), [262]);
  for (const { text, ids } of expected.gpt2) assert.deepEqual(tok.encode(text), ids, `encode ${JSON.stringify(text)}`);
  assert.equal(tok.tokenToId('Ġthe'), 262);
  assert.equal(tok.idToToken(262), 'Ġthe');
  assert.equal(tok.bosId, 50256);
  assert.equal(tok.eosId, 50256);
  assert.equal(tok.padId, undefined);
  assert.deepEqual(tok.eosIds, [50256]);
});

test('GPT-2 tokenizer.json: decode(encode(s)) == s on unicode, emoji and whitespace', () => {
  const tok = loadTokenizer(join(MODELS, 'tiny-gpt2-random'));
  const texts = [
    ...expected.gpt2.map((c) => c.text),
    '',
    ' ',
    '\n\n\t  \r\n',
    'Ünïcödé ∑ ∫ ≠ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢',
    '👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, e\u0301 combining',
    'mixed 中文 English العربية עברית',
  ];
  for (const s of texts) assert.equal(tok.decode(tok.encode(s)), s, JSON.stringify(s));
  assert.deepEqual(tok.decode([]), '');
  assert.throws(() => tok.decode([50257]), /token id 50257 is not in the vocabulary/);
});

test('GPT-2 tokenizer.json: <|endoftext|> is one special id, skipped on request', () => {
  const tok = loadTokenizer(join(MODELS, 'tiny-gpt2-random'));
  const ids = tok.encode('Hello world<|endoftext|>');
  assert.deepEqual(ids, [15496, 995, 50256]);
  assert.equal(tok.decode(ids), 'Hello world<|endoftext|>');
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), 'Hello world');
});

test('tokenizer.json of a PEFT adapter folder loads (pad token from tokenizer_config.json)', () => {
  const tok = loadTokenizer(join(MODELS, 'lora-gpt2-tigrinya-causallm'));
  assert.equal(tok.padId, 50256);
  assert.deepEqual(tok.encode('Hello world'), [15496, 995]);
  const bert = loadTokenizer(join(MODELS, 'lora-distilbert-imdb-tashu'));
  assert.equal(bert.padId, bert.tokenToId('[PAD]'));
  // BERT's post-processor wraps the text in [CLS] ... [SEP]; the uncased normalizer lowercases.
  const ids = bert.encode('Hello World');
  assert.equal(ids[0], bert.tokenToId('[CLS]'));
  assert.equal(ids[ids.length - 1], bert.tokenToId('[SEP]'));
  assert.equal(bert.decode(ids, { skipSpecialTokens: true }), 'hello world');
});

// ---------------------------------------------------------------- tokenizer_config.json: special tokens, chat templates

test('tokenizer_config.json: {content} BOS, list eos_token_id, post-processor BOS, add_bos/eos flags', () => {
  const tok = loadTokenizer(TINY);
  const bos = tok.tokenToId('<|begin_of_text|>')!;
  const eot = tok.tokenToId('<|eot_id|>')!;
  assert.equal(tok.bosId, bos);
  assert.equal(tok.eosId, eot);
  assert.deepEqual([...tok.eosIds].sort(), [tok.tokenToId('<|end_of_text|>')!, eot].sort());
  const plain = tok.encode('hello there', { addSpecialTokens: false });
  assert.ok(!plain.includes(bos));
  assert.deepEqual(tok.encode('hello there'), [bos, ...plain]); // TemplateProcessing in tokenizer.json
  const flags = (flagsCfg: Record<string, boolean>, fn: (t: Tokenizer) => void): void =>
    withDir(
      {
        'tokenizer.json': { link: join(TINY, 'tokenizer.json') },
        'tokenizer_config.json': JSON.stringify({ ...tinyConfig(), ...flagsCfg }),
      },
      (dir) => fn(loadTokenizer(dir)),
    );
  flags({ add_bos_token: false }, (t) => assert.deepEqual(t.encode('hello there'), plain));
  flags({ add_bos_token: true, add_eos_token: true }, (t) => assert.deepEqual(t.encode('hello there'), [bos, ...plain, eot]));
  flags({ add_eos_token: true }, (t) => assert.deepEqual(t.encode('hello there', { addSpecialTokens: false }), plain));
});

test('chat templates render as Python jinja2 does, and their text encodes to the independent ids', () => {
  const tok = loadTokenizer(TINY);
  assert.ok(tok.applyChatTemplate);
  for (const c of expected.chat) {
    const text = tok.applyChatTemplate(c.messages, { addGenerationPrompt: c.add_generation_prompt, templateName: c.template_name });
    assert.equal(text, c.text, `${c.template_name} add_generation_prompt=${c.add_generation_prompt}`);
    const ids = tok.encode(text, { addSpecialTokens: false });
    assert.deepEqual(ids, c.ids);
    assert.equal(tok.decode(ids), text);
  }
  // The default of a named list is "default"; the generation prompt is only the assistant header.
  const msgs: ChatMessage[] = [{ role: 'user', content: 'hi' }];
  const off = tok.applyChatTemplate(msgs);
  const on = tok.applyChatTemplate(msgs, { addGenerationPrompt: true });
  assert.ok(off.startsWith('<|begin_of_text|>'));
  assert.equal(on, off + '<|start_header_id|>assistant<|end_header_id|>\n\n');
});

test('chat template errors name the tokenizer_config.json they come from', () => {
  const cfgPath = join(TINY, 'tokenizer_config.json');
  const tok = loadTokenizer(TINY);
  const tool: ChatMessage[] = [{ role: 'tool', content: '42' }];
  assert.throws(
    () => tok.applyChatTemplate!(tool, { templateName: 'chatml' }),
    (e: Error) => e.message.includes(cfgPath) && e.message.includes('Unknown role: tool'),
  );
  assert.throws(() => tok.applyChatTemplate!(tool, { templateName: 'nope' }), /no chat_template named "nope" \(it has "default", "chatml"\)/);
  const withConfig = (cfg: Record<string, unknown>, fn: (t: Tokenizer, dir: string) => void): void =>
    withDir(
      { 'tokenizer.json': { link: join(TINY, 'tokenizer.json') }, 'tokenizer_config.json': JSON.stringify(cfg) },
      (dir) => fn(loadTokenizer(dir), dir),
    );
  const { chat_template: _, ...noTemplate } = tinyConfig();
  withConfig(noTemplate, (t, dir) =>
    assert.throws(() => t.applyChatTemplate!(tool), (e: Error) => e.message.includes(join(dir, 'tokenizer_config.json')) && /no chat_template/.test(e.message)),
  );
  withConfig({ ...noTemplate, chat_template: '{% for m in messages %}{{ m.content' }, (t, dir) =>
    assert.throws(() => t.applyChatTemplate!(tool), (e: Error) => e.message.includes(join(dir, 'tokenizer_config.json')) && /cannot parse/.test(e.message)),
  );
  // A plain-string template, with the eos_token variable.
  withConfig({ ...noTemplate, chat_template: '{% for m in messages %}[{{ m.role }}] {{ m.content }}{{ eos_token }}{% endfor %}' }, (t) =>
    assert.equal(t.applyChatTemplate!([{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }]), '[user] a<|eot_id|>[assistant] b<|eot_id|>'),
  );
});

test('chat_template.jinja is used when tokenizer_config.json has no chat_template', () => {
  const { chat_template: _, ...noTemplate } = tinyConfig();
  withDir(
    {
      'tokenizer.json': { link: join(TINY, 'tokenizer.json') },
      'tokenizer_config.json': JSON.stringify(noTemplate),
      'chat_template.jinja': '{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}',
    },
    (dir) => assert.equal(loadTokenizer(dir).applyChatTemplate!([{ role: 'user', content: 'x' }]), '<|begin_of_text|>x'),
  );
});

// ---------------------------------------------------------------- loadTokenizer errors

test('loadTokenizer errors: missing folder, nothing to load, corrupt tokenizer.json', () => {
  assert.throws(() => loadTokenizer(join(MODELS, 'no-such-model')), /no-such-model is not a directory/);
  withDir({ 'config.json': '{}' }, (dir) =>
    assert.throws(() => loadTokenizer(dir), /no tokenizer in .*: looked for tokenizer\.json .*tokenizer\.bin or tok\*\.bin/),
  );
  withDir({ 'tokenizer.json': '{"model": {"type": "BPE", ' }, (dir) =>
    assert.throws(() => loadTokenizer(dir), (e: Error) => e.message.includes(join(dir, 'tokenizer.json')) && /not valid JSON/.test(e.message)),
  );
  withDir({ 'tokenizer.json': '{"version": "1.0"}' }, (dir) =>
    assert.throws(() => loadTokenizer(dir), (e: Error) => e.message.includes(join(dir, 'tokenizer.json')) && /cannot build/.test(e.message)),
  );
  // tokenizer.json wins over a llama2.c file in the same folder.
  withDir(
    { 'tokenizer.json': { link: join(TINY, 'tokenizer.json') }, 'tokenizer.bin': { link: join(MODELS, 'stories260K/tok512.bin') } },
    (dir) => assert.equal(loadTokenizer(dir).vocabSize, loadTokenizer(TINY).vocabSize),
  );
});
