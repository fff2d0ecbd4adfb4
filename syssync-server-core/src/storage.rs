//! Persistence: the [`Storage`] trait and the in-memory [`MemoryStorage`].
//!
//! A device decision reads the device's record, its account, its account's
//! jobs and releases, and writes the device's record, its member state in one
//! job and that job's record (counters). Nothing else changes on the device
//! face, so a relational backend can keep devices, members and job counters in
//! rows and run several front ends against it, serialising per device.
//!
//! Reads of the larger records return references. A database-backed store
//! loads the rows a request needs (the device, its account, that account's
//! open jobs and their releases) into its own cache before the request and
//! writes back what the `put_*` and `*_mut` calls changed after it.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use syssync_proto::message::Inventory;
use syssync_proto::{AccountId, DeviceId, InventoryDigest, JobId, Sha256Digest, TargetType};

use crate::model::{
    Account, Artifact, DeviceRecord, Group, GroupId, InventoryRef, Job, MemberState, Release,
    ReleaseId, TagSetRef, TargetRef, Transfer,
};

/// A stored inventory with its digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredInventory {
    /// The inventory, files sorted by name.
    pub inventory: Inventory,
    /// Its [`Inventory::digest`].
    pub digest: InventoryDigest,
}

/// Persistence of the server's records. The module docs list the calls a
/// device decision makes.
pub trait Storage {
    /// Allocates the next account id (never 0, never reused).
    fn allocate_account_id(&mut self) -> AccountId;
    /// Allocates the next release id.
    fn allocate_release_id(&mut self) -> ReleaseId;
    /// Allocates the next group id.
    fn allocate_group_id(&mut self) -> GroupId;
    /// Allocates the next job id (never 0).
    fn allocate_job_id(&mut self) -> JobId;

    /// Returns an account.
    fn account(&self, id: AccountId) -> Option<&Account>;
    /// Inserts or replaces an account.
    fn put_account(&mut self, account: Account);

    /// Returns a copy of a device's record.
    fn device(&self, id: DeviceId) -> Option<DeviceRecord>;
    /// Inserts or replaces a device's record.
    fn put_device(&mut self, record: DeviceRecord);
    /// Returns the ids of an account's devices, ascending.
    fn devices_of(&self, account: AccountId) -> Vec<DeviceId>;

    /// Returns the reference of a target type name, adding it if new.
    fn intern_target(&mut self, name: &TargetType) -> TargetRef;
    /// Returns the reference of a target type name if it was interned.
    fn find_target(&self, name: &str) -> Option<TargetRef>;
    /// Returns an interned target type name.
    fn target(&self, target: TargetRef) -> Option<&TargetType>;
    /// Returns the reference of a tag set (sorted, unique), adding it if new.
    fn intern_tags(&mut self, tags: &[String]) -> TagSetRef;
    /// Returns an interned tag set.
    fn tags(&self, tags: TagSetRef) -> &[String];
    /// Returns the reference of an inventory, storing it once if new.
    fn intern_inventory(&mut self, inventory: &Inventory, digest: InventoryDigest) -> InventoryRef;
    /// Returns an interned inventory.
    fn inventory(&self, inventory: InventoryRef) -> Option<&StoredInventory>;

    /// Returns a stored artifact.
    fn artifact(&self, digest: &Sha256Digest) -> Option<&Artifact>;
    /// Inserts or replaces an artifact.
    fn put_artifact(&mut self, digest: Sha256Digest, artifact: Artifact);
    /// Changes an artifact's reference count.
    fn artifact_mut(&mut self, digest: &Sha256Digest) -> Option<&mut Artifact>;
    /// Deletes an artifact.
    fn remove_artifact(&mut self, digest: &Sha256Digest);

    /// Returns a release.
    fn release(&self, id: ReleaseId) -> Option<&Release>;
    /// Inserts or replaces a release.
    fn put_release(&mut self, release: Release);
    /// Deletes a release.
    fn remove_release(&mut self, id: ReleaseId);
    /// Returns the ids of an account's releases, ascending.
    fn releases_of(&self, account: AccountId) -> Vec<ReleaseId>;

    /// Returns a group.
    fn group(&self, id: GroupId) -> Option<&Group>;
    /// Inserts or replaces a group.
    fn put_group(&mut self, group: Group);

    /// Returns a job.
    fn job(&self, id: JobId) -> Option<&Job>;
    /// Returns a job for changing its status and counters.
    fn job_mut(&mut self, id: JobId) -> Option<&mut Job>;
    /// Inserts or replaces a job.
    fn put_job(&mut self, job: Job);
    /// Returns the ids of an account's jobs, ascending.
    fn jobs_of(&self, account: AccountId) -> &[JobId];

    /// Returns a device's standing in a job (default if none was stored).
    fn member(&self, job: JobId, device: DeviceId) -> MemberState;
    /// Stores a device's standing in a job.
    fn put_member(&mut self, job: JobId, device: DeviceId, state: MemberState);

    /// Returns the pending handover of a device.
    fn transfer(&self, device: DeviceId) -> Option<Transfer>;
    /// Stores or, with `None`, clears the pending handover of a device.
    fn set_transfer(&mut self, device: DeviceId, transfer: Option<Transfer>);
}

/// FxHash-style multiplicative hasher for the device index, chosen for speed.
/// Device ids come from the operator or from devices that hold the account's
/// claim token, so choosing colliding ids takes that secret. The index is only
/// looked up, never iterated, so its order cannot reach a decision.
#[derive(Clone, Copy, Debug, Default)]
struct DeviceIdHasher(u64);

impl Hasher for DeviceIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 =
                (self.0.rotate_left(5) ^ u64::from(*byte)).wrapping_mul(0x51_7C_C1_B7_27_22_0A_95);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x51_7C_C1_B7_27_22_0A_95);
    }
}

type DeviceIndex = HashMap<DeviceId, u32, BuildHasherDefault<DeviceIdHasher>>;

/// Everything in memory: devices in a dense vector with a hash index, one
/// stored copy per distinct inventory, and job members as one small entry per
/// device slot per job. Deterministic: nothing iterates a hash map.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemoryStorage {
    next_account: u64,
    next_release: u32,
    next_group: u32,
    next_job: u32,
    accounts: BTreeMap<AccountId, Account>,
    devices: Vec<DeviceRecord>,
    device_index: DeviceIndex,
    targets: Vec<TargetType>,
    target_index: BTreeMap<TargetType, TargetRef>,
    tag_sets: Vec<Vec<String>>,
    tag_index: BTreeMap<Vec<String>, TagSetRef>,
    inventories: Vec<StoredInventory>,
    inventory_index: BTreeMap<InventoryDigest, Vec<InventoryRef>>,
    artifacts: BTreeMap<Sha256Digest, Artifact>,
    releases: BTreeMap<ReleaseId, Release>,
    groups: BTreeMap<GroupId, Group>,
    jobs: BTreeMap<JobId, Job>,
    jobs_by_account: BTreeMap<AccountId, Vec<JobId>>,
    members: BTreeMap<JobId, Vec<MemberState>>,
    transfers: BTreeMap<DeviceId, Transfer>,
}

impl MemoryStorage {
    /// Creates an empty store.
    pub fn new() -> Self {
        let mut store = Self::default();
        // Tag set 0 is the empty set.
        store.tag_sets.push(Vec::new());
        store.tag_index.insert(Vec::new(), TagSetRef(0));
        store
    }

    /// Creates an empty store with room for `devices` device records.
    pub fn with_device_capacity(devices: usize) -> Self {
        let mut store = Self::new();
        store.devices.reserve_exact(devices);
        store.device_index.reserve(devices);
        store
    }

    /// Returns the number of devices.
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// Returns every artifact with its digest, by digest.
    pub fn artifacts(&self) -> impl Iterator<Item = (&Sha256Digest, &Artifact)> {
        self.artifacts.iter()
    }

    /// Returns every release, by id.
    pub fn releases(&self) -> impl Iterator<Item = &Release> {
        self.releases.values()
    }

    /// Returns every device record, in registration order.
    pub fn device_records(&self) -> &[DeviceRecord] {
        &self.devices
    }

    /// Returns every job, by id.
    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs.values()
    }

    /// Returns the number of distinct inventories stored.
    pub fn inventory_count(&self) -> usize {
        self.inventories.len()
    }
}

impl Storage for MemoryStorage {
    fn allocate_account_id(&mut self) -> AccountId {
        self.next_account += 1;
        AccountId(self.next_account)
    }

    fn allocate_release_id(&mut self) -> ReleaseId {
        self.next_release += 1;
        ReleaseId(self.next_release)
    }

    fn allocate_group_id(&mut self) -> GroupId {
        self.next_group += 1;
        GroupId(self.next_group)
    }

    fn allocate_job_id(&mut self) -> JobId {
        self.next_job += 1;
        JobId(self.next_job)
    }

    fn account(&self, id: AccountId) -> Option<&Account> {
        self.accounts.get(&id)
    }

    fn put_account(&mut self, account: Account) {
        self.accounts.insert(account.id, account);
    }

    fn device(&self, id: DeviceId) -> Option<DeviceRecord> {
        let slot = *self.device_index.get(&id)?;
        self.devices.get(slot as usize).copied()
    }

    fn put_device(&mut self, record: DeviceRecord) {
        match self.device_index.entry(record.id) {
            Entry::Occupied(entry) => {
                if let Some(slot) = self.devices.get_mut(*entry.get() as usize) {
                    *slot = record;
                }
            }
            Entry::Vacant(entry) => {
                entry.insert(self.devices.len() as u32);
                self.devices.push(record);
            }
        }
    }

    fn devices_of(&self, account: AccountId) -> Vec<DeviceId> {
        let mut ids: Vec<DeviceId> = self
            .devices
            .iter()
            .filter(|record| record.account == account)
            .map(|record| record.id)
            .collect();
        ids.sort_unstable();
        ids
    }

    fn intern_target(&mut self, name: &TargetType) -> TargetRef {
        if let Some(target) = self.target_index.get(name) {
            return *target;
        }
        let target = TargetRef(self.targets.len() as u32);
        self.targets.push(name.clone());
        self.target_index.insert(name.clone(), target);
        target
    }

    fn find_target(&self, name: &str) -> Option<TargetRef> {
        let name = TargetType::try_from(name).ok()?;
        self.target_index.get(&name).copied()
    }

    fn target(&self, target: TargetRef) -> Option<&TargetType> {
        self.targets.get(target.0 as usize)
    }

    fn intern_tags(&mut self, tags: &[String]) -> TagSetRef {
        if let Some(set) = self.tag_index.get(tags) {
            return *set;
        }
        let set = TagSetRef(self.tag_sets.len() as u32);
        self.tag_sets.push(tags.to_vec());
        self.tag_index.insert(tags.to_vec(), set);
        set
    }

    fn tags(&self, tags: TagSetRef) -> &[String] {
        self.tag_sets
            .get(tags.0 as usize)
            .map_or(&[][..], |set| set.as_slice())
    }

    fn intern_inventory(&mut self, inventory: &Inventory, digest: InventoryDigest) -> InventoryRef {
        let candidates = self.inventory_index.entry(digest).or_default();
        for candidate in candidates.iter() {
            let stored = self.inventories.get(candidate.0 as usize);
            if stored.is_some_and(|stored| stored.inventory == *inventory) {
                return *candidate;
            }
        }
        let reference = InventoryRef(self.inventories.len() as u32);
        self.inventories.push(StoredInventory {
            inventory: inventory.clone(),
            digest,
        });
        candidates.push(reference);
        reference
    }

    fn inventory(&self, inventory: InventoryRef) -> Option<&StoredInventory> {
        self.inventories.get(inventory.0 as usize)
    }

    fn artifact(&self, digest: &Sha256Digest) -> Option<&Artifact> {
        self.artifacts.get(digest)
    }

    fn put_artifact(&mut self, digest: Sha256Digest, artifact: Artifact) {
        self.artifacts.insert(digest, artifact);
    }

    fn artifact_mut(&mut self, digest: &Sha256Digest) -> Option<&mut Artifact> {
        self.artifacts.get_mut(digest)
    }

    fn remove_artifact(&mut self, digest: &Sha256Digest) {
        self.artifacts.remove(digest);
    }

    fn release(&self, id: ReleaseId) -> Option<&Release> {
        self.releases.get(&id)
    }

    fn put_release(&mut self, release: Release) {
        self.releases.insert(release.id, release);
    }

    fn remove_release(&mut self, id: ReleaseId) {
        self.releases.remove(&id);
    }

    fn releases_of(&self, account: AccountId) -> Vec<ReleaseId> {
        self.releases
            .values()
            .filter(|release| release.account == account)
            .map(|release| release.id)
            .collect()
    }

    fn group(&self, id: GroupId) -> Option<&Group> {
        self.groups.get(&id)
    }

    fn put_group(&mut self, group: Group) {
        self.groups.insert(group.id, group);
    }

    fn job(&self, id: JobId) -> Option<&Job> {
        self.jobs.get(&id)
    }

    fn job_mut(&mut self, id: JobId) -> Option<&mut Job> {
        self.jobs.get_mut(&id)
    }

    fn put_job(&mut self, job: Job) {
        let ids = self.jobs_by_account.entry(job.account).or_default();
        if let Err(position) = ids.binary_search(&job.id) {
            ids.insert(position, job.id);
        }
        self.jobs.insert(job.id, job);
    }

    fn jobs_of(&self, account: AccountId) -> &[JobId] {
        self.jobs_by_account
            .get(&account)
            .map_or(&[][..], |ids| ids.as_slice())
    }

    fn member(&self, job: JobId, device: DeviceId) -> MemberState {
        let Some(slot) = self.device_index.get(&device) else {
            return MemberState::default();
        };
        self.members
            .get(&job)
            .and_then(|members| members.get(*slot as usize))
            .copied()
            .unwrap_or_default()
    }

    fn put_member(&mut self, job: JobId, device: DeviceId, state: MemberState) {
        let Some(slot) = self.device_index.get(&device) else {
            return;
        };
        let slot = *slot as usize;
        let members = self.members.entry(job).or_default();
        if members.len() <= slot {
            members.resize(slot + 1, MemberState::default());
        }
        members[slot] = state;
    }

    fn transfer(&self, device: DeviceId) -> Option<Transfer> {
        self.transfers.get(&device).copied()
    }

    fn set_transfer(&mut self, device: DeviceId, transfer: Option<Transfer>) {
        match transfer {
            Some(transfer) => {
                self.transfers.insert(device, transfer);
            }
            None => {
                self.transfers.remove(&device);
            }
        }
    }
}
