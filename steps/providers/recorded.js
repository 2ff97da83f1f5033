// promptci's offline provider for promptfoo: serves recorded responses.
//
// A recording is looked up by a hash of the canonical model, the model
// parameters and the exact prompt promptfoo sends (the rendered chat
// messages as JSON), so any change to the prompt, a variable or a parameter
// needs a new recording. The same key is computed in Python
// (steps/providers/recordings.py). A missing recording is an error, never a pass.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

function recordingKey(model, paramsKey, prompt) {
  return crypto.createHash('sha256').update(`${model}\n${paramsKey}\n${prompt}`, 'utf8').digest('hex');
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

class RecordedProvider {
  constructor(options) {
    this.config = (options && options.config) || {};
    this.providerId = (options && options.id) || 'promptci-recorded';
  }

  id() {
    return this.providerId;
  }

  logCall(line) {
    const log = process.env.PROMPTCI_CALL_LOG;
    if (log) fs.appendFileSync(log, line + '\n');
  }

  async callApi(prompt, context) {
    const cfg = this.config;
    const test = (context && context.test && context.test.description) || 'unnamed test';
    if (cfg.role === 'grader') {
      return {
        error: `artifact ${cfg.artifact_id}, test '${test}': a model-graded assertion asked the grader, ` +
          'and grader calls are not recorded; run with PROMPTCI_PROVIDER=live',
      };
    }
    const key = recordingKey(cfg.model, cfg.params_key, prompt);
    const file = path.join(cfg.recordings_dir, cfg.artifact_id, key.slice(0, 24) + '.json');
    const repeat = (context && typeof context.repeatIndex === 'number') ? context.repeatIndex : 0;
    this.logCall(JSON.stringify({ artifact: cfg.artifact_id, test, key: key.slice(0, 24), repeat }));
    const delay = Number(process.env.PROMPTCI_RECORDED_DELAY_MS || 0);
    if (delay > 0) await sleep(delay);
    let rec;
    try {
      rec = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      const why = err.code === 'ENOENT' ? 'no recording' : `unreadable recording (${err.message})`;
      return {
        error: `artifact ${cfg.artifact_id}, test '${test}': ${why} for model ${cfg.model} ` +
          `(expected ${file}); record it with PROMPTCI_RECORD=1 or python -m steps.providers.author`,
      };
    }
    const responses = Array.isArray(rec.responses) ? rec.responses : [];
    if (responses.length === 0 || (responses.length > 1 && repeat >= responses.length)) {
      return {
        error: `artifact ${cfg.artifact_id}, test '${test}': recording ${path.basename(file)} has ` +
          `${responses.length} response(s); repeat ${repeat + 1} needs one`,
      };
    }
    // One response serves every repeat (a deterministic model); several vary by repeat index.
    const r = responses.length === 1 ? responses[0] : responses[repeat];
    if (r.error) return { error: `artifact ${cfg.artifact_id}, test '${test}': provider error: ${r.error}` };
    const usage = r.tokenUsage || {};
    // Who gave this answer: a recording without a model origin counts as written by hand.
    const origin = rec.origin && typeof rec.origin === 'object' && rec.origin.model ? 'model' : 'authored';
    return {
      output: r.output,
      tokenUsage: { prompt: usage.prompt || 0, completion: usage.completion || 0, total: usage.total || 0 },
      cost: r.cost || 0,
      cached: false,
      metadata: { promptci_origin: origin, promptci_origin_model: origin === 'model' ? rec.origin.model : null },
    };
  }
}

module.exports = RecordedProvider;
