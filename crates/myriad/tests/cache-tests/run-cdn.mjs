// Runs the CDN-Cache-Control tests (RFC 9213) of the HTTP cache conformance suite
// (https://github.com/http-tests/cache-tests; cdn-cache-control.mjs and LICENSE here are
// the suite's, at b55b8bd) with the suite's test engine (npm http-cache-tests, installed by
// scripts/peers/cache-tests) against the cache at CACHE_TESTS_BASE, in front of the suite's
// own server. Prints each test's id, kind (none: required; optimal; check) and result
// (true, or [kind of failure, message]).
import { createRequire } from 'module'
import path from 'path'

const engine = process.env.CACHE_TESTS_ENGINE
const base = process.env.CACHE_TESTS_BASE
if (!engine || !base) {
  console.error('CACHE_TESTS_ENGINE and CACHE_TESTS_BASE are needed')
  process.exit(2)
}
const require = createRequire(path.join(engine, 'package.json'))
const fetch = require('node-fetch')
const { runTests, getResults } = await import(path.join(engine, 'client/runner.mjs'))
const suite = (await import(new URL('./cdn-cache-control.mjs', import.meta.url))).default

await runTests([suite], fetch, false, base)
const results = getResults()
const tests = suite.tests.map(t => ({
  id: t.id,
  name: t.name,
  kind: t.kind || 'required',
  result: t.id in results ? results[t.id] : null
}))
console.log(JSON.stringify({ suite: suite.id, tests }))
