/**
 * `node --cpu-prof` for processes one cannot add flags to: Node refuses
 * --cpu-prof in NODE_OPTIONS, and `npm start` spawns its services itself.
 * Preloaded with --import (which NODE_OPTIONS allows), it profiles the main
 * thread from start-up to exit and writes a .cpuprofile that
 * profile-summary.ts reads, named like --cpu-prof's (CPU.<date>.<time>.<pid>.0.001).
 *
 * usage: CPU_PROFILE_DIR=/tmp/prof NODE_OPTIONS="--import $PWD/scripts/bench/cpu-profile.mjs" \
 *          RATE_LIMITS=off node dist/scripts/start.js
 * Profiles are written when each process exits normally (Ctrl-C on npm start does that).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

const dir = process.env.CPU_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  // The in-process session answers synchronously, so the profile can be taken in an 'exit' handler.
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 1000 }); // µs, as --cpu-prof
  session.post('Profiler.start');
  process.once('exit', () => {
    session.post('Profiler.stop', (err, result) => {
      if (err) return;
      const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '.').slice(0, 15);
      mkdirSync(dir, { recursive: true });
      writeFileSync(
        join(dir, `CPU.${stamp}.${process.pid}.0.001.cpuprofile`),
        JSON.stringify(result.profile),
      );
    });
  });
}
