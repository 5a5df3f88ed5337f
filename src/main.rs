fn main() {
    println!("wandash {}", env!("CARGO_PKG_VERSION"));
}
