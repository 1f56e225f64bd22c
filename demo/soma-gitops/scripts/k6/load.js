// Generated from profiles.yaml (profile: load). A realistic agent workload: list the
// project's agents, start a run, read its status — with think time drawn per iteration.
import http from 'k6/http';
import { check, group, sleep } from 'k6';

const BASE = __ENV.BASE_URL || 'http://gateway-api.soma-agent-hub.svc:10000';
const TOKEN = __ENV.API_TOKEN || '';
const PARAMS = {
  headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TOKEN}` },
};

export const options = {
  scenarios: {
    load: {
      executor: 'ramping-vus',
      startVUs: 0,
      stages: [
        { duration: '2m', target: 50 },
        { duration: '10m', target: 50 },
        { duration: '2m', target: 0 },
      ],
      gracefulRampDown: '30s',
    },
  },
  thresholds: {
    http_req_duration: ['p(99)<500'],
    'http_req_duration{name:start-run}': ['p(99)<800'],
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
  },
};

export default function () {
  let agentId;
  group('list agents', () => {
    const res = http.get(`${BASE}/v1/agents`, { ...PARAMS, tags: { name: 'list-agents' } });
    check(res, { 'agents listed': (r) => r.status === 200 });
    const agents = res.status === 200 ? res.json('items') || [] : [];
    agentId = agents.length ? agents[Math.floor(Math.random() * agents.length)].id : undefined;
  });
  if (!agentId) {
    return;
  }
  group('run agent', () => {
    const started = http.post(
      `${BASE}/v1/agents/${agentId}/runs`,
      JSON.stringify({ input: 'summarise the latest deployment events' }),
      { ...PARAMS, tags: { name: 'start-run' } },
    );
    check(started, { 'run accepted': (r) => r.status === 202 || r.status === 201 });
    if (started.status === 201 || started.status === 202) {
      const run = http.get(`${BASE}/v1/runs/${started.json('id')}`, {
        ...PARAMS,
        tags: { name: 'run-status' },
      });
      check(run, { 'run visible': (r) => r.status === 200 });
    }
  });
  sleep(0.5 + Math.random() * 2);
}
