// The benches' floor: ONE promptfoo process over the tests of many eval configs.
//
// Each test carries the provider its own config named (var `promptci_floor_provider`: {id, config},
// a `file://` JS provider such as steps/providers/recorded.js). This provider loads that module once,
// keeps one instance per distinct config, and hands the call to it: the same recordings, the same
// lookup, the same answers as the pipeline's branches, in one process (bench/floor.py writes the config).
'use strict';

const instances = new Map();

function delegate(spec) {
  const key = JSON.stringify(spec);
  if (!instances.has(key)) {
    const file = String(spec.id).replace(/^file:\/\//, '');
    const Provider = require(file);
    instances.set(key, new Provider({ id: spec.label || spec.id, config: spec.config || {} }));
  }
  return instances.get(key);
}

class FloorProvider {
  constructor(options) {
    this.providerId = (options && options.id) || 'promptci-floor';
  }

  id() {
    return this.providerId;
  }

  async callApi(prompt, context) {
    const raw = context && context.vars && context.vars.promptci_floor_provider;
    if (!raw) return { error: 'floor: the test names no provider (promptci_floor_provider)' };
    return delegate(typeof raw === 'string' ? JSON.parse(raw) : raw).callApi(prompt, context);
  }
}

module.exports = FloorProvider;
