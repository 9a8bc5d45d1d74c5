//! Marketplace's id newtypes (the kernel's `TenantId` and `UserId` cover the rest).

keel_kernel::id_type!(
    /// A seller's listing.
    ListingId, "listing id", v7
);
keel_kernel::id_type!(
    /// A buyer's offer or a seller's counter-offer.
    OfferId, "offer id", v7
);
keel_kernel::id_type!(
    /// An order of units of a listing.
    OrderId, "order id", v7
);
keel_kernel::id_type!(
    /// A dispute about an order.
    DisputeId, "dispute id", v7
);
