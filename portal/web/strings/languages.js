// The languages the strings table exists in (strings/<tag>.js); the first is the default.
export default ['en'];
