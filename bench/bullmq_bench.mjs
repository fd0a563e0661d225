// BullMQ: node bullmq_bench.mjs <redisPort> <N>   (BULLMQ_DIR: a directory where
// `npm install bullmq ioredis` was done). Defaults kept (completed jobs are retained,
// like rota keeps job records). Copied from the project's shared bench scripts, with
// Redis used_memory per queued job added (2,000 jobs, as rota's row) and the CPU
// figures always on; bench/peers.py runs it on a fresh redis-server.
import { createRequire } from 'module';
const require = createRequire(process.env.BULLMQ_DIR ? process.env.BULLMQ_DIR + '/' : import.meta.url);
const { Queue, Worker, FlowProducer } = require('bullmq');

const port = Number(process.argv[2]);
const N = Number(process.argv[3] || 10000);
const connection = { host: '127.0.0.1', port };

async function enqueue(name) {
  const q = new Queue(name, { connection });
  await q.waitUntilReady();
  const t0 = performance.now();
  for (let left = N; left > 0; left -= 1000) {
    const k = Math.min(1000, left);
    await q.addBulk(Array.from({ length: k }, (_, i) => ({ name: 'noop', data: { i } })));
  }
  const dt = (performance.now() - t0) / 1000;
  await q.close();
  return N / dt;
}

async function redisCpu() {
  const { default: IORedis } = await import(require.resolve('ioredis'));
  const c = new IORedis(connection);
  const info = await c.info('cpu');
  c.disconnect();
  const get = (k) => Number(info.match(new RegExp(k + ':([0-9.]+)'))[1]);
  return get('used_cpu_sys') + get('used_cpu_user');
}

function drain(name, concurrency) {
  return new Promise((resolve) => {
    let done = 0, t0 = null;
    const cpu0 = process.cpuUsage();
    const w = new Worker(name, async () => { if (t0 === null) t0 = performance.now(); }, { connection, concurrency });
    w.on('completed', async () => {
      done++;
      if (done === N) {
        const dt = (performance.now() - t0) / 1000;
        const cpu = process.cpuUsage(cpu0);
        await w.close();
        drain.cpuMsPerJob = (cpu.user + cpu.system) / 1000 / N;
        resolve(N / dt);
      }
    });
  });
}

async function chain50() {
  const qn = 'chain' + Math.random().toString(36).slice(2);
  let node = { name: 'j0', queueName: qn, data: {} };
  for (let i = 1; i < 50; i++) node = { name: 'j' + i, queueName: qn, data: {}, children: [node] };
  // j49 is the root: it runs last, after j0..j48 complete in order.
  let count = 0;
  let resolveDone;
  const finished = new Promise((r) => (resolveDone = r));
  const w = new Worker(qn, async () => {}, { connection, concurrency: 1 });
  w.on('completed', (job) => { count++; if (job.name === 'j49') resolveDone(); });
  await w.waitUntilReady();
  const fp = new FlowProducer({ connection });
  const t0 = performance.now();
  await fp.add(node);
  await finished;
  const dt = (performance.now() - t0) / 1000;
  await w.close(); await fp.close();
  if (count !== 50) throw new Error('chain count ' + count);
  return dt;
}

async function memoryPerJob() {
  const { default: IORedis } = await import(require.resolve('ioredis'));
  const c = new IORedis(connection);
  const used = async () => Number((await c.info('memory')).match(/used_memory:([0-9]+)/)[1]);
  const q = new Queue('memory', { connection });
  await q.waitUntilReady();
  const before = await used();
  for (let k = 0; k < 2; k++) {
    await q.addBulk(Array.from({ length: 1000 }, (_, i) => ({ name: 'noop', data: { i } })));
  }
  const perJob = (await used() - before) / 2000;
  await q.obliterate({ force: true });
  await q.close();
  c.disconnect();
  return perJob;
}

const out = {};
out.memory_per_job = await memoryPerJob();
out.enqueue_c1 = await enqueue('c1');
out.c1 = await drain('c1', 1);
out.enqueue_c8 = await enqueue('c8');
let r0 = 0;
r0 = await redisCpu();
out.c8 = await drain('c8', 8);
// worker CPU covers the drain only; Redis CPU also covers closing the worker
out.c8_cpu_ms_per_job = drain.cpuMsPerJob;
out.c8_redis_cpu_ms_per_job = (await redisCpu() - r0) * 1000 / N;
const walls = [];
for (let i = 0; i < 3; i++) walls.push(await chain50());
walls.sort((a, b) => a - b);
out.chain50_s = walls[1];
console.log('RESULT ' + JSON.stringify(out));
process.exit(0);
