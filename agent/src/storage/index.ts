// Storage driver registry of the native engine: one factory per kind. The Proxmox drivers
// (lvmthin, zfs) take their settings from the agent's `pve` key (thin-pool limits, mount dir,
// command timeout). A kind missing from the table is a configuration error, not a crash.
import { LullError } from "@lull/shared";
import { createBtrfsDriver } from "./btrfs.js";
import { createDirDriver } from "./dir.js";
import { createLvmThinDriver } from "./lvmthin.js";
import { createZfsDriver } from "./zfs.js";
import type { StorageDriver, StorageDriverDeps, StorageKind } from "./driver.js";

export type { SnapshotHandle, SnapshotRequest, SnapshotVolume, StorageDriver, StorageDriverDeps, StorageKind } from "./driver.js";

type DriverFactory = (deps: StorageDriverDeps) => StorageDriver;

const DRIVER_FACTORIES: Readonly<Partial<Record<StorageKind, DriverFactory>>> = Object.freeze({
  dir: createDirDriver,
  btrfs: createBtrfsDriver,
  lvmthin: (deps) => {
    const pve = deps.config.pve;
    return createLvmThinDriver(deps, {
      thinPool: pve.thinPool,
      mountDir: pve.mountDir,
      mountOptions: pve.mountOptions,
      mountsFile: pve.mountsFile,
      commandTimeoutMs: pve.commandTimeoutMs,
    });
  },
  zfs: (deps) => createZfsDriver(deps, { commandTimeoutMs: deps.config.pve.commandTimeoutMs }),
});

/** The kinds this build can drive. */
export function storageKinds(): StorageKind[] {
  return Object.keys(DRIVER_FACTORIES) as StorageKind[];
}

export function hasStorageDriver(kind: StorageKind): boolean {
  return DRIVER_FACTORIES[kind] !== undefined;
}

/** Builds the driver of `kind`; LULL_E_CONFIG_INVALID for a kind this build does not have yet. */
export function createStorageDriver(kind: StorageKind, deps: StorageDriverDeps): StorageDriver {
  const factory = DRIVER_FACTORIES[kind];
  if (!factory) {
    throw new LullError(
      "LULL_E_CONFIG_INVALID",
      `guests[].driver: storage driver "${kind}" is not available in this agent (available: ${storageKinds().join(", ")})`,
    );
  }
  return factory(deps);
}
