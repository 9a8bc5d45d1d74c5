//! Billing's id newtypes (the kernel's `TenantId` covers the tenant).

keel_kernel::id_type!(
    /// A tenant's subscription.
    SubscriptionId, "subscription id", v7
);
keel_kernel::id_type!(
    /// A price of a plan. Prices seeded from config have ids derived from their plan and key,
    /// so every start gives them the same id (see `repo::catalogue::price_id`).
    PriceId, "price id", v7
);
keel_kernel::id_type!(
    /// An invoice.
    InvoiceId, "invoice id", v7
);
keel_kernel::id_type!(
    /// One usage record.
    UsageRecordId, "usage record id", v7
);
