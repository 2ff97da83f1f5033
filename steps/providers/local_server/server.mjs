// promptci's local model server: a small GGUF chat model (node-llama-cpp, CPU prebuilt binaries)
// behind the two OpenAI-compatible routes promptfoo's `openai:chat` provider uses:
//   GET  /v1/models            readiness probe: answers only once the model is loaded
//   POST /v1/chat/completions  one completion, real token usage from llama.cpp's token meter
//
// It listens on 127.0.0.1 only. Requests are served one at a time (one context sequence),
// each from a cleared context, so an answer depends only on the request: with temperature 0
// and a seed the same request gives the same bytes across requests and restarts.
// Started and stopped by steps/providers/local_model.py; never by hand in a pipeline.
//
// usage: node server.mjs --model FILE [--port N] [--threads N] [--ctx N] [--name MODEL_ID]
// Prints one JSON line {"listening": port, "model": name} on stdout when ready, and exits when its
// stdin closes (the launcher died), so it never outlives whoever started it.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { getLlama, LlamaChat } from 'node-llama-cpp';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    port: { type: 'string', default: '0' },
    threads: { type: 'string', default: '1' },
    ctx: { type: 'string', default: '2048' },
    name: { type: 'string' },
  },
});
if (!args.model) {
  process.stderr.write('usage: node server.mjs --model FILE [--port N] [--threads N] [--ctx N] [--name ID]\n');
  process.exit(2);
}
const threads = Math.max(1, Number(args.threads));
const modelName = args.name || path.basename(args.model).replace(/\.gguf$/, '');
const requestLog = process.env.PROMPTCI_LOCAL_REQUEST_LOG;

const llama = await getLlama({ gpu: false, build: 'never', maxThreads: threads, logLevel: 'error' });
const model = await llama.loadModel({ modelPath: args.model });
const context = await model.createContext({ contextSize: Number(args.ctx), sequences: 1, threads });
const sequence = context.getSequence();
const jsonGrammar = await llama.getGrammarFor('json');
let queue = Promise.resolve();

function history(messages) {
  // OpenAI messages -> node-llama-cpp chat history; "developer" is the newer name of "system".
  return messages.map((m) => {
    const text = typeof m.content === 'string' ? m.content
      : (m.content || []).map((p) => (typeof p === 'string' ? p : p.text || '')).join('');
    if (m.role === 'system' || m.role === 'developer') return { type: 'system', text };
    if (m.role === 'assistant') return { type: 'model', response: [text] };
    return { type: 'user', text };
  });
}

async function complete(body) {
  if (!Array.isArray(body.messages) || body.messages.length === 0) {
    throw Object.assign(new Error('messages must be a non-empty list'), { status: 400 });
  }
  await sequence.clearHistory();
  const before = sequence.tokenMeter.getState();
  const chat = new LlamaChat({ contextSequence: sequence, autoDisposeSequence: false });
  try {
    const stop = body.stop == null ? [] : [].concat(body.stop);
    const json = body.response_format && body.response_format.type === 'json_object';
    const res = await chat.generateResponse(history(body.messages), {
      maxTokens: body.max_completion_tokens ?? body.max_tokens ?? 256,
      temperature: body.temperature ?? 0,
      topP: body.top_p,
      seed: body.seed ?? 0,
      customStopTriggers: stop.length ? stop : undefined,
      grammar: json ? jsonGrammar : undefined,
    });
    const used = sequence.tokenMeter.diff(before);
    return {
      id: `chatcmpl-local-${Date.now()}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: modelName,
      choices: [{
        index: 0,
        message: { role: 'assistant', content: res.response },
        finish_reason: res.metadata.stopReason === 'maxTokens' ? 'length' : 'stop',
      }],
      usage: {
        prompt_tokens: used.usedInputTokens,
        completion_tokens: used.usedOutputTokens,
        total_tokens: used.usedInputTokens + used.usedOutputTokens,
      },
    };
  } finally {
    chat.dispose({ disposeSequence: false });
  }
}

function send(res, status, obj) {
  const data = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/v1/models') {
    send(res, 200, { object: 'list', data: [{ id: modelName, object: 'model', owned_by: 'promptci-local' }] });
    return;
  }
  if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
    send(res, 404, { error: { message: `no route ${req.method} ${req.url}`, type: 'invalid_request_error' } });
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch (err) {
      send(res, 400, { error: { message: `body is not JSON: ${err.message}`, type: 'invalid_request_error' } });
      return;
    }
    const started = Date.now();
    let generating = 0;
    const job = queue.then(() => {
      generating = Date.now();
      return complete(body);
    });
    queue = job.catch(() => {});
    job.then((out) => {
      if (requestLog) {  // ms: from arrival (queueing included); gen_ms: generating this answer only
        const now = Date.now();
        fs.appendFileSync(requestLog, JSON.stringify({
          pid: process.pid, port: server.address().port, ms: now - started, gen_ms: now - generating,
          usage: out.usage,
        }) + '\n');
      }
      send(res, 200, out);
    }, (err) => {
      send(res, err.status || 500, { error: { message: String(err.message || err), type: 'server_error' } });
    });
  });
});

server.listen(Number(args.port), '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ listening: server.address().port, model: modelName }) + '\n');
});
// The launcher holds our stdin open; when it goes away, even by SIGKILL, stdin ends and so do we.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    process.exit(0);
  });
}
