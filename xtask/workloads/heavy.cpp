// One unit of the C++ build workload: the bench repeats it with UNIT
// replaced by 0, 1, 2..., so each copy instantiates the containers,
// variants and algorithms anew for its own key type.
namespace uUNIT {
struct Key {
    int v;
    std::string s;
    bool operator<(const Key& o) const { return std::tie(v, s) < std::tie(o.v, o.s); }
    bool operator==(const Key& o) const { return v == o.v && s == o.s; }
};
struct Hash {
    size_t operator()(const Key& k) const { return std::hash<std::string>()(k.s) ^ size_t(k.v); }
};
using Value = std::variant<int, double, std::string, Key, std::vector<Key>>;

std::string show(const Value& v) {
    return std::visit([](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) return x;
        else if constexpr (std::is_same_v<T, Key>) return x.s + std::to_string(x.v);
        else if constexpr (std::is_same_v<T, std::vector<Key>>) return std::to_string(x.size());
        else return std::to_string(x);
    }, v);
}

long run(const std::vector<std::string>& words) {
    std::map<Key, std::vector<Value>> by_key;
    std::unordered_map<Key, std::set<std::string>, Hash> seen;
    std::regex re("([a-z]+)([0-9]*)");
    for (size_t i = 0; i < words.size(); i++) {
        std::smatch m;
        Key k{int(i % UNIT_MOD), words[i]};
        if (std::regex_match(words[i], m, re)) k.s = m[1];
        by_key[k].push_back(Value(double(i)));
        by_key[k].push_back(Value(k));
        seen[k].insert(words[i]);
    }
    std::vector<std::pair<Key, size_t>> sizes;
    for (auto& [k, vs] : by_key) sizes.emplace_back(k, vs.size());
    std::sort(sizes.begin(), sizes.end(), [](const auto& a, const auto& b) { return a.second > b.second || (a.second == b.second && a.first < b.first); });
    std::function<long(const Value&)> weigh = [](const Value& v) { return long(show(v).size()); };
    long total = std::accumulate(sizes.begin(), sizes.end(), 0L, [](long t, const auto& p) { return t + long(p.second); });
    for (auto& [k, vs] : by_key)
        total += std::count_if(vs.begin(), vs.end(), [&](const Value& v) { return weigh(v) > 2; });
    std::ostringstream out;
    for (auto& [k, s] : seen) out << k.s << ':' << s.size() << ' ';
    return total + long(out.str().size());
}
}  // namespace uUNIT
