//! The wallets a transfer scenario moves money between, who owns them, and which transfer
//! each client makes next: shared by tessera's run and the database's ceiling.

/// A user whose wallets the clients spend from.
#[derive(Clone)]
pub struct Owner {
    pub username: String,
    pub user_id: String,
    pub token: String,
}

#[derive(Clone)]
pub struct BenchWallet {
    pub id: String,
    /// Index into [`Layout::owners`].
    pub owner: usize,
}

/// The wallets of one scenario and who owns them; client `w` spends as owner `w % owners`.
pub struct Layout {
    pub name: &'static str,
    pub owners: Vec<Owner>,
    pub wallets: Vec<BenchWallet>,
    by_owner: Vec<Vec<usize>>,
}

/// One transfer to make: indexes into [`Layout::wallets`].
pub struct Pick {
    pub from: usize,
    pub to: usize,
    pub amount: u64,
}

impl Layout {
    pub fn new(name: &'static str, owners: Vec<Owner>, wallets: Vec<BenchWallet>) -> Self {
        let mut by_owner = vec![Vec::new(); owners.len()];
        for (index, wallet) in wallets.iter().enumerate() {
            by_owner[wallet.owner].push(index);
        }
        Self { name, owners, wallets, by_owner }
    }

    /// A transfer for client `worker` from `random` bits: from one of its owner's wallets to
    /// any other wallet, 1 to 100 minor units.
    pub fn pick(&self, worker: usize, random: u64) -> Pick {
        let own = &self.by_owner[worker % self.by_owner.len()];
        let from = own[(random % own.len() as u64) as usize];
        let mut to = ((random >> 16) % (self.wallets.len() as u64 - 1)) as usize;
        if to >= from {
            to += 1;
        }
        Pick { from, to, amount: (random >> 48) % 100 + 1 }
    }
}

/// SplitMix64: well-spread bits from a counter.
pub fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
