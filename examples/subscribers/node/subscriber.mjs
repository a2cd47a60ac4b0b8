// Prints one line per dvp-scheduler task event, reading only the JSON on the wire.
//
//   npm install
//   node subscriber.mjs --server nats://127.0.0.1:4222 [--tenant acme] [--kind failed] [--follow]
//
// Without --follow it reads the stream up to its current end and exits; with it, it goes on.
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";

const STREAM = "DVP_TASKS";

function options(argv) {
  const opts = { server: "nats://127.0.0.1:4222", tenant: "*", kind: "*", follow: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--follow") opts.follow = true;
    else if (arg === "--server") opts.server = argv[++i];
    else if (arg === "--tenant") opts.tenant = argv[++i];
    else if (arg === "--kind") opts.kind = argv[++i];
    else throw new Error(`unknown argument ${arg}`);
  }
  return opts;
}

// What each type adds to its line; an unknown type still gets a line (readers must not break
// when a new event type or field appears).
const details = {
  "task.registered.v1": (e) => `plugin=${e.plugin} schedule=${e.spec.schedule.cron_expression ?? `every ${e.spec.schedule.interval_seconds}s`}`,
  "task.unregistered.v1": (e) => `plugin=${e.plugin}`,
  "task.paused.v1": (e) => `note=${JSON.stringify(e.note ?? "")}`,
  "task.resumed.v1": (e) => `note=${JSON.stringify(e.note ?? "")}`,
  "task.due.v1": (e) => `execution=${e.execution_id} attempt=${e.attempt} trigger=${e.trigger}`,
  "task.skipped.v1": (e) => `fire=${e.scheduled_for} reason=${e.reason}`,
  "task.started.v1": (e) => `execution=${e.execution_id} attempt=${e.attempt} worker=${e.worker}`,
  "task.succeeded.v1": (e) => `execution=${e.execution_id} attempt=${e.attempt} duration_ms=${e.duration_ms}`,
  "task.retry_scheduled.v1": (e) => `execution=${e.execution_id} attempt=${e.attempt} retry_at=${e.retry_at} error=${JSON.stringify(e.error.message)} decided_by=${e.decision.source}`,
  "task.failed.v1": (e) => `execution=${e.execution_id} attempt=${e.attempt} reason=${e.reason} error=${JSON.stringify(e.error.message)}`,
};

// The subject is the authority: a body naming another tenant, kind or task than its subject
// was written by someone allowed only that subject, and is ignored.
function mismatch(subject, e) {
  const [, , tenant, kind, ...task] = subject.split(".");
  const tag = String(e.type ?? "").split(".")[1];
  const bodyKind = tag === "retry_scheduled" ? "retry" : tag;
  if (tenant === e.tenant_id && kind === bodyKind && task.join(".") === e.task_id) return null;
  return `the body (${e.tenant_id}/${bodyKind}/${e.task_id}) does not match its subject ${subject}`;
}

async function main() {
  const opts = options(process.argv.slice(2));
  const nc = await connect({ servers: opts.server });
  const jsm = await jetstreamManager(nc);
  const last = (await jsm.streams.info(STREAM)).state.last_seq;
  const filter = `dvp.tasks.${opts.tenant}.${opts.kind}.>`;
  const consumer = await jetstream(nc).consumers.get(STREAM, { filter_subjects: [filter] });
  if (last === 0 && !opts.follow) {
    await nc.close();
    return;
  }
  const messages = await consumer.consume();
  for await (const m of messages) {
    let line;
    try {
      const e = m.json();
      const forged = mismatch(m.subject, e);
      if (forged) {
        line = `seq=${m.seq} ignored: ${forged}`;
      } else {
        const extra = details[e.type] ? details[e.type](e) : `(unknown type; fields: ${Object.keys(e).join(",")})`;
        line = `${e.occurred_at} ${e.type} ${e.tenant_id}/${e.task_id} ${extra}`;
      }
    } catch (error) {
      line = `seq=${m.seq} not an event: ${error.message}`;
    }
    console.log(line);
    if (!opts.follow && m.seq >= last) break;
  }
  await nc.close();
}

main().catch((error) => {
  console.error(`subscriber: ${error.message}`);
  process.exit(1);
});
