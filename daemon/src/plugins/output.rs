//! The size of what a plugin returns, so that an oversized answer becomes a contract fault
//! instead of flowing into the store and the API. Sizes count string and list bytes; fixed
//! fields count a nominal 8.

use super::bindings::paygate::provider::types::*;

pub trait OutputSize {
    fn output_size(&self) -> usize;
}

impl OutputSize for String {
    fn output_size(&self) -> usize {
        self.len()
    }
}

impl OutputSize for Vec<u8> {
    fn output_size(&self) -> usize {
        self.len()
    }
}

impl<T: OutputSize> OutputSize for Option<T> {
    fn output_size(&self) -> usize {
        self.as_ref().map_or(0, OutputSize::output_size)
    }
}

impl<T: OutputSize, E: OutputSize> OutputSize for Result<T, E> {
    fn output_size(&self) -> usize {
        match self {
            Ok(v) => v.output_size(),
            Err(e) => e.output_size(),
        }
    }
}

/// Lists: the sum of their items (lists of bytes have their own impl above).
macro_rules! list_size {
    ($($t:ty),*) => {$(
        impl OutputSize for Vec<$t> {
            fn output_size(&self) -> usize {
                self.iter().map(OutputSize::output_size).sum()
            }
        }
    )*};
}
list_size!(String, Update, BillEntry, ProviderInfo, CodePattern, Fee);

/// Records: the sum of the listed fields, plus 8 per record.
macro_rules! record_size {
    ($t:ty { $($field:ident),* }) => {
        impl OutputSize for $t {
            fn output_size(&self) -> usize {
                8 $(+ self.$field.output_size())*
            }
        }
    };
}

/// Fixed-size values.
macro_rules! fixed_size {
    ($($t:ty),*) => {$(
        impl OutputSize for $t {
            fn output_size(&self) -> usize { 8 }
        }
    )*};
}
fixed_size!(
    PaymentStatus,
    RefundStatus,
    OnboardingStatus,
    BindingStatus,
    BillEntryKind,
    Method,
    Operation,
    u16,
    u8,
    u32,
    i64
);
list_size!(Method, Operation);

record_size!(Money { currency });
record_size!(Declined { code, message });
record_size!(PaymentResult {
    status,
    provider_reference,
    qr_code,
    failure,
    payer,
    amount,
    card
});
record_size!(Card { network, last_four });
record_size!(TokenFacts { token_id, amount });
record_size!(RefundResult {
    status,
    provider_reference,
    failure,
    amount
});
record_size!(OnboardingResult {
    status,
    provider_reference,
    rejection_reason,
    next_step_json
});
record_size!(BindingResult {
    status,
    provider_reference,
    verification_json,
    failure
});
record_size!(Reply { content_type, body });
record_size!(NotificationResult { updates, reply });
record_size!(NotificationRejected { reason, reply });
record_size!(PaymentUpdate {
    payment_id,
    outcome
});
record_size!(RefundUpdate { refund_id, outcome });
record_size!(OnboardingUpdate {
    activation_id,
    outcome
});
record_size!(BindingUpdate {
    bank_account_id,
    outcome
});
record_size!(BillEntry {
    kind,
    payment_id,
    refund_id,
    provider_reference,
    amount,
    fee,
    occurred_at,
    line
});
record_size!(BillFile { name, content });
record_size!(CodePattern { prefixes });
record_size!(Fee { method });
record_size!(ProviderInfo {
    name,
    display_name,
    methods,
    currencies,
    payment_codes,
    operations,
    fees
});
record_size!(PluginInfo {
    name,
    version,
    providers
});

impl OutputSize for ProviderError {
    fn output_size(&self) -> usize {
        match self {
            ProviderError::Declined(d) => d.output_size(),
            ProviderError::InvalidRequest(m)
            | ProviderError::Unavailable(m)
            | ProviderError::UnknownOutcome(m) => m.output_size(),
        }
    }
}

impl OutputSize for BillDownload {
    fn output_size(&self) -> usize {
        match self {
            BillDownload::File(file) => file.output_size(),
            BillDownload::NotReady(m) => m.output_size(),
            BillDownload::NoBill => 8,
        }
    }
}

impl OutputSize for Update {
    fn output_size(&self) -> usize {
        match self {
            Update::Payment(u) => u.output_size(),
            Update::Refund(u) => u.output_size(),
            Update::Onboarding(u) => u.output_size(),
            Update::Binding(u) => u.output_size(),
        }
    }
}
