fn main() {
    println!("rkt: under construction");
}
