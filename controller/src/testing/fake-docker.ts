// Where the fake docker CLI is (test/fakes/docker/docker, a product of the test workspace): named by
// $LULL_FAKE_DOCKER, which the test command sets, so the controller package never reaches into
// the test workspace by a path of its own.
import { resolve } from "node:path";

/** The env var naming the fake docker executable. */
export const FAKE_DOCKER_ENV = "LULL_FAKE_DOCKER";

/** The fake docker CLI's absolute path; throws when the variable is not set. */
export function fakeDockerPath(): string {
  const path = process.env[FAKE_DOCKER_ENV];
  if (path === undefined || path === "") {
    throw new Error(`${FAKE_DOCKER_ENV} is not set: these tests run against the fake docker CLI and need its path (test/fakes/docker/docker; the test command sets it)`);
  }
  return resolve(path);
}
