//! `#[transform]` and `#[compaction_policy]`: turn one plain function into a
//! Sluice plugin. The function is kept as written; the macro adds a hidden
//! implementation of the WIT export that decodes batches, calls it per
//! record, and encodes the answer. Mistakes in the signature are reported on
//! the offending tokens.

use proc_macro::TokenStream;
use quote::{quote, quote_spanned};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, Path};

/// Marks `fn(&Record, &mut Output) -> Result<(), E: Display>` as the plugin's
/// transform. Optional: `#[transform(init = my_init)]` with
/// `fn my_init(&Config) -> Result<(), E: Display>`, called once with the
/// pipeline's configuration.
#[proc_macro_attribute]
pub fn transform(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand_or_report(attr, item, Kind::Transform)
}

/// Marks `fn(&Record) -> Result<Decision, E: Display>` as the plugin's
/// compaction policy. Accepts `init = my_init` like `#[transform]`.
#[proc_macro_attribute]
pub fn compaction_policy(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand_or_report(attr, item, Kind::Compaction)
}

/// On a mistake, reports it and keeps the function as written, so the
/// author sees only the real error (not follow-on ones such as unused imports).
fn expand_or_report(attr: TokenStream, item: TokenStream, kind: Kind) -> TokenStream {
    let original = proc_macro2::TokenStream::from(item.clone());
    match expand(attr, item, kind) {
        Ok(ts) => ts.into(),
        Err(e) => {
            let mut ts = e.to_compile_error();
            ts.extend(original);
            ts.into()
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Transform,
    Compaction,
}

fn expand(attr: TokenStream, item: TokenStream, kind: Kind) -> syn::Result<proc_macro2::TokenStream> {
    let init = parse_init(attr)?;
    let f: ItemFn = syn::parse(item)?;
    let sig = &f.sig;
    let (want, shape) = match kind {
        Kind::Transform => (2, "fn(&Record, &mut Output) -> Result<(), E>"),
        Kind::Compaction => (1, "fn(&Record) -> Result<Decision, E>"),
    };
    if let Some(a) = &sig.asyncness {
        return Err(syn::Error::new_spanned(a, "plugin functions cannot be async"));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "plugin functions cannot be generic",
        ));
    }
    if sig.inputs.len() != want {
        let span = if sig.inputs.is_empty() {
            sig.ident.span()
        } else {
            sig.inputs.span()
        };
        return Err(syn::Error::new(span, format!("expected `{shape}`")));
    }
    if let Some(FnArg::Receiver(r)) = sig.inputs.first() {
        return Err(syn::Error::new_spanned(r, "plugin functions cannot take `self`"));
    }
    if matches!(sig.output, syn::ReturnType::Default) {
        return Err(syn::Error::new_spanned(
            sig,
            format!("expected `{shape}`: missing the Result return type"),
        ));
    }
    let name = &sig.ident;
    let init_call = match &init {
        Some(p) => {
            quote_spanned!(p.span()=> ::core::option::Option::Some(|c: &::sluice_sdk::Config| #p(c).map_err(|e| ::std::string::ToString::to_string(&e))))
        }
        None => quote!(::core::option::Option::None),
    };
    let body = match kind {
        Kind::Transform => quote! {
            struct __SluicePlugin;
            impl ::sluice_sdk::__private::transform_bindings::exports::sluice::plugin::transformer::Guest for __SluicePlugin {
                fn init(config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>)
                    -> ::core::result::Result<(), ::std::string::String> {
                    ::sluice_sdk::__private::init(config, #init_call)
                }
                fn transform(batch: ::std::vec::Vec<u8>) -> ::core::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                    ::sluice_sdk::__private::run_transform(&batch, #name)
                }
            }
            ::sluice_sdk::__private::transform_bindings::__export_transform!(__SluicePlugin);
        },
        Kind::Compaction => quote! {
            struct __SluicePlugin;
            impl ::sluice_sdk::__private::compaction_bindings::exports::sluice::plugin::compactor::Guest for __SluicePlugin {
                fn init(config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>)
                    -> ::core::result::Result<(), ::std::string::String> {
                    ::sluice_sdk::__private::init(config, #init_call)
                }
                fn decide(batch: ::std::vec::Vec<u8>)
                    -> ::core::result::Result<::std::vec::Vec<::sluice_sdk::__private::compaction_bindings::exports::sluice::plugin::compactor::Decision>, ::std::string::String> {
                    ::sluice_sdk::__private::run_decide(&batch, #name)
                }
            }
            ::sluice_sdk::__private::compaction_bindings::__export_compaction!(__SluicePlugin);
        },
    };
    Ok(quote! {
        #f
        #[doc(hidden)]
        const _: () = { #body };
    })
}

fn parse_init(attr: TokenStream) -> syn::Result<Option<Path>> {
    let mut init = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("init") {
            init = Some(meta.value()?.parse::<Path>()?);
            Ok(())
        } else {
            Err(meta.error("unknown option; the only option is `init = path::to::fn`"))
        }
    });
    parser.parse(attr)?;
    Ok(init)
}
