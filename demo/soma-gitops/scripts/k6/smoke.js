// Generated from profiles.yaml (profile: smoke). Checks that gateway-api answers at all.
import http from 'k6/http';
import { check } from 'k6';

const TARGET = __ENV.TARGET || 'http://gateway-api.soma-agent-hub.svc:10000/health';

export const options = {
  scenarios: {
    smoke: { executor: 'constant-vus', vus: 2, duration: '1m' },
  },
  thresholds: {
    http_req_duration: ['p(99)<500'],
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
  },
};

export default function () {
  const res = http.get(TARGET, { tags: { name: 'health' } });
  check(res, {
    'status is 200': (r) => r.status === 200,
  });
}
