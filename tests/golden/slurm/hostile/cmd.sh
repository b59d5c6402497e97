{ export GREETING='hé; `x`'
}
rc=$?
if [ "$rc" -ne 0 ]; then
  echo "pollinator: init-cmd failed with exit code $rc" >&2
  exit "$rc"
fi
printf '%s|' "$GREETING" 'it'"'"'s "quoted" $HOME `id` $(id) ; rm -rf / & | > < \ 
 second line ünïcødé ✓ *' '$PROJECT_DIR' 7 '{"a": 1}'

