//! CAP IDENTIFY, CALIDEXPAND and UPNEXPAND (placeholder; being written).
