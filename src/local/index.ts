// Real servers on loopback for the local rehearsal (coopctl rehearse) and the integration tests, each
// in its own temp folder, run as an unprivileged user and stopped afterwards (stop() is idempotent; a process-exit hook covers a test that crashed).
export { run, RunError, tail, type RunOptions, type RunResult } from "./run";
export { freePort, isPortOpen, waitFor } from "./net";
export { makeTempDir, onExit, isAlive, type TempDir } from "./lifecycle";
export { ensureUser, DEFAULT_TEST_USER, type SystemUser } from "./users";
export { startPostgres, psqlAt, DEBIAN_PG_BIN, type PostgresOptions, type PostgresServer } from "./postgres";
export { startRedis, type RedisOptions, type RedisServer } from "./redis";
export { startSshd, type SshdOptions, type SshdServer } from "./sshd";
export { startNginx, type NginxOptions, type NginxServer, type NginxContext } from "./nginx";
